/**
 * Which broadcast an RTMP publish names, and its stream key. Two spellings, so
 * that both FFmpeg-style URLs and OBS's Server + Stream Key fields work:
 *
 * - app `live`, stream `<broadcast>?key=<key>`: `rtmp://host/live/keynote?key=K`,
 *   or OBS Server `rtmp://host/live`, Stream Key `keynote?key=K`;
 * - app `live/<broadcast>`, stream `<key>`: OBS Server `rtmp://host/live/keynote`,
 *   Stream Key `K`.
 *
 * `token=` is taken as well as `key=`. Without a key the publish is open only
 * when the relay has no ingest tokens.
 */
export const RTMP_APP = 'live';

export function rtmpTarget(app: string, streamName: string, query: URLSearchParams): { broadcastId: string; key: string | undefined } | { error: string } {
	const path = app.replace(/^\/+|\/+$/g, '');
	const queryKey = query.get('key') ?? query.get('token') ?? undefined;
	if (path === RTMP_APP) return { broadcastId: streamName, key: queryKey };
	if (path.startsWith(`${RTMP_APP}/`)) {
		const broadcastId = path.slice(RTMP_APP.length + 1);
		return { broadcastId, key: queryKey ?? (streamName === '' ? undefined : streamName) };
	}
	return { error: `application "${app.slice(0, 80)}" is not served; publish to rtmp://<host>:<port>/${RTMP_APP}/<broadcast>?key=<key>` };
}
