/**
 * What a signed token grants: the `broadcast_relay` claim, a list of
 * permissions, each an action and (for publish and play) the broadcast id or
 * a pattern with `*` wildcards:
 *
 *   "broadcast_relay": [{ "action": "publish", "broadcast": "keynote" },
 *                       { "action": "play", "broadcast": "talk-*" },
 *                       { "action": "admin" }]
 *
 * Pure functions, no I/O: the verifier checks the signature and expiry first.
 */

/** The claim that carries the permissions. */
export const PERMISSIONS_CLAIM = 'broadcast_relay';

/** publish: WHIP, the RTP/pipe ingest API, RTMP/SRT stream keys. play: WHEP. admin: the admin API and /metrics. */
export const ACTIONS = ['publish', 'play', 'admin'] as const;
export type Action = (typeof ACTIONS)[number];

export interface Permission {
	action: Action;
	/** Broadcast id or pattern (`*` matches any run of characters). Needed for publish and play; ignored for admin. */
	broadcast?: string;
}

/** What a request needs: an action, and for publish and play the broadcast it is for. */
export interface AccessNeed {
	action: Action;
	broadcastId?: string;
}

/** Patterns are broadcast ids (letters, digits, - and _) with `*` wildcards; nothing else is special. */
const PATTERN = /^[A-Za-z0-9_*-]{1,64}$/;

/** True when `pattern` (an id, or with `*` wildcards) names `broadcastId`. */
export function broadcastMatches(pattern: string, broadcastId: string): boolean {
	if (!PATTERN.test(pattern)) return false;
	return new RegExp(`^${pattern.replaceAll('*', '.*')}$`).test(broadcastId);
}

/**
 * The permissions a token's payload carries, or a description of what is
 * wrong with the claim (a token with a malformed claim is refused as invalid,
 * not read as granting nothing).
 */
export function readPermissions(payload: Record<string, unknown>): { permissions: Permission[] } | { error: string } {
	const claim = payload[PERMISSIONS_CLAIM];
	if (claim === undefined) return { permissions: [] };
	if (!Array.isArray(claim)) return { error: `the "${PERMISSIONS_CLAIM}" claim must be an array of {action, broadcast} objects` };
	const permissions: Permission[] = [];
	for (const [index, entry] of claim.entries()) {
		const where = `"${PERMISSIONS_CLAIM}"[${index}]`;
		if (typeof entry !== 'object' || entry === null) return { error: `${where} must be an object {action, broadcast}` };
		const { action, broadcast } = entry as Record<string, unknown>;
		if (typeof action !== 'string' || !(ACTIONS as readonly string[]).includes(action)) {
			return { error: `${where}.action must be one of ${ACTIONS.join(', ')}` };
		}
		if (action !== 'admin') {
			if (typeof broadcast !== 'string' || !PATTERN.test(broadcast)) {
				return { error: `${where}.broadcast must be a broadcast id or a pattern with * (letters, digits, - _ and *)` };
			}
		}
		permissions.push(action === 'admin' ? { action } : { action: action as Action, broadcast: broadcast as string });
	}
	return { permissions };
}

/**
 * Whether the permissions grant `need`; when they do not, a sentence saying
 * what the token does grant, for the 403 answer.
 */
export function grants(permissions: readonly Permission[], need: AccessNeed): { granted: true } | { granted: false; reason: string } {
	const granted = permissions.some(
		(p) => p.action === need.action && (need.action === 'admin' || (need.broadcastId !== undefined && broadcastMatches(p.broadcast!, need.broadcastId))),
	);
	if (granted) return { granted: true };
	const has = permissions.map((p) => (p.action === 'admin' ? 'admin' : `${p.action} "${p.broadcast}"`)).join(', ') || 'nothing';
	const wanted = need.action === 'admin' ? 'admin' : `${need.action} "${need.broadcastId}"`;
	return { granted: false, reason: `the token does not grant ${wanted} (it grants ${has}); mint one that does` };
}
