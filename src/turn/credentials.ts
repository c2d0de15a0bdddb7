import { createHmac } from 'node:crypto';

/** TURN settings, as resolved by the service config (see README, TURN). */
export interface TurnOptions {
	/** stun:, turn: and turns: URLs handed to clients. turn(s): ones get credentials. */
	urls: readonly string[];
	/** Shared secret of the TURN server (coturn's static-auth-secret). */
	secret?: string;
	/** How long the credentials are valid, seconds. */
	ttlSeconds: number;
}

export interface TurnCredentials {
	/** `<expiry unix seconds>:<id>` */
	username: string;
	/** base64(HMAC-SHA1(secret, username)) */
	credential: string;
	expiresAt: Date;
}

/**
 * Time-limited TURN credentials in the TURN REST scheme coturn checks with
 * `use-auth-secret` (draft-uberti-behave-turn-rest): the username is the
 * expiry time and an id, the password is the HMAC-SHA1 of the username under
 * the shared secret, so the TURN server needs no user database.
 */
export function turnRestCredentials(options: { secret: string; ttlSeconds: number; id: string; now?: number }): TurnCredentials {
	const { secret, ttlSeconds, id, now = Date.now() } = options;
	const expiry = Math.floor(now / 1000) + ttlSeconds;
	// coturn splits the username at its first ':' (rest-api-separator) and reads the expiry before it.
	const username = `${expiry}:${id.replaceAll(':', '_')}`;
	const credential = createHmac('sha1', secret).update(username).digest('base64');
	return { username, credential, expiresAt: new Date(expiry * 1000) };
}

/** A quoted-string (RFC 9110 §5.6.4): backslash-escape `"` and `\`. */
function quoted(value: string): string {
	return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The `Link: <url>; rel="ice-server"` header values (RFC 9725 §4.6) for a
 * WHIP/WHEP 201 answer: stun: URLs bare, turn(s): URLs with fresh credentials
 * for this session.
 */
export function iceServerLinks(turn: TurnOptions, sessionId: string, now?: number): string[] {
	if (turn.urls.length === 0) return [];
	const credentials = turn.secret ? turnRestCredentials({ secret: turn.secret, ttlSeconds: turn.ttlSeconds, id: sessionId, now }) : undefined;
	return turn.urls.map((url) => {
		const link = `<${url}>; rel="ice-server"`;
		if (!credentials || !/^turns?:/i.test(url)) return link;
		return `${link}; username=${quoted(credentials.username)}; credential=${quoted(credentials.credential)}; credential-type="password"`;
	});
}

/** RTCIceServer as a WebRTC client takes it. */
export interface IceServer {
	urls: string;
	username?: string;
	credential?: string;
}

/**
 * The ICE servers in Link header values (one header each, or several joined
 * with ", " as fetch's Headers.get returns them): what a WHIP/WHEP client
 * puts in its RTCPeerConnection configuration.
 */
export function parseIceServerLinks(headers: string | readonly string[] | null | undefined): IceServer[] {
	const text = typeof headers === 'string' ? headers : (headers ?? []).join(', ');
	const servers: IceServer[] = [];
	// <url> then ;-separated parameters, values token or quoted-string; links separated by commas outside quotes.
	const link = /<([^>]*)>((?:\s*;\s*[A-Za-z0-9*-]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,\s]*))?)*)/g;
	const parameter = /;\s*([A-Za-z0-9*-]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*))?/g;
	for (const [, url, rest] of text.matchAll(link)) {
		const params = new Map<string, string>();
		for (const [, name, raw = ''] of rest!.matchAll(parameter)) {
			const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
			params.set(name!.toLowerCase(), value);
		}
		if (!(params.get('rel') ?? '').split(/\s+/).includes('ice-server')) continue;
		const server: IceServer = { urls: url! };
		if (params.has('username')) server.username = params.get('username')!;
		if (params.has('credential')) server.credential = params.get('credential')!;
		servers.push(server);
	}
	return servers;
}
