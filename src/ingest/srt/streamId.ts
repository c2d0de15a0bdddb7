/**
 * Which broadcast an SRT caller names in its streamid, and its key. Accepted:
 *
 * - the SRT access-control syntax: `#!::r=<broadcast>,m=publish[,s=<key>]`
 *   (`m` defaults to publish; `s` is the key, as MediaMTX reads it; `u` ignored);
 * - `publish:<broadcast>[:<key>]`;
 * - a bare `<broadcast>` (a key can then only be absent).
 *
 * Any mode other than publish (request, bidirectional) is refused: the relay
 * plays over WHEP, not over SRT.
 */
export function srtTarget(raw: string): { broadcastId: string; key: string | undefined } | { error: string } {
	// FFmpeg passes its streamid option on as written; a caller that percent-encoded it in its URL meant the decoded text.
	const streamId = /%[0-9A-Fa-f]{2}/.test(raw) ? safeDecode(raw) : raw;
	if (streamId.startsWith('#!::')) {
		const fields = new Map<string, string>();
		for (const pair of streamId.slice(4).split(',')) {
			const at = pair.indexOf('=');
			if (at > 0) fields.set(pair.slice(0, at), pair.slice(at + 1));
		}
		const mode = fields.get('m') ?? 'publish';
		if (mode !== 'publish') return { error: `streamid mode "${mode}" is not served; the relay takes publishers only (m=publish)` };
		const broadcastId = fields.get('r');
		if (!broadcastId) return { error: 'streamid has no resource (r=<broadcast>)' };
		return { broadcastId, key: fields.get('s') };
	}
	if (streamId.startsWith('publish:')) {
		const [, broadcastId = '', ...rest] = streamId.split(':');
		return { broadcastId, key: rest.length > 0 ? rest.join(':') : undefined };
	}
	if (/^(read|play|request):/.test(streamId)) return { error: 'the relay takes publishers only over SRT; play over WHEP' };
	if (streamId === '') return { error: 'no streamid; set streamid=publish:<broadcast>:<key> (or #!::r=<broadcast>,m=publish,s=<key>)' };
	return { broadcastId: streamId, key: undefined };
}

function safeDecode(text: string): string {
	try {
		return decodeURIComponent(text);
	} catch {
		return text;
	}
}

/** The streamid for a log line: the key (`s=` or the third `publish:` field) replaced. */
export function redactStreamId(streamId: string): string {
	const decoded = /%[0-9A-Fa-f]{2}/.test(streamId) ? safeDecode(streamId) : streamId;
	if (decoded.startsWith('#!::')) return decoded.replace(/([,:]s=)[^,]*/, '$1[redacted]');
	if (decoded.startsWith('publish:')) {
		const [mode, id, ...key] = decoded.split(':');
		return key.length > 0 ? `${mode}:${id}:[redacted]` : decoded;
	}
	return decoded;
}
