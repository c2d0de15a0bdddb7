import sdpTransform from 'sdp-transform';
import type { types as ms } from 'mediasoup';
import { codecFromMimeType } from '../codecs.js';
import { InvalidRtpParametersError } from '../errors.js';

/**
 * The SDP FFmpeg reads to receive one RTP stream from a mediasoup consumer:
 * FFmpeg listens on `rtpPort` and `rtpPort + 1` (RTCP). `host` is the
 * connection address: FFmpeg's SDP demuxer sends its receiver reports there and,
 * with `-sdp_flags filter_src`, connects its sockets to `host:rtpPort` and
 * `host:rtpPort + 1`, accepting packets from there only (see PortPool.acquireFeed).
 */
export function ffmpegInputSdp(rtpParameters: ms.RtpParameters, host: string, rtpPort: number): string {
	const codec = rtpParameters.codecs.find((c) => !/\/rtx$/i.test(c.mimeType));
	if (!codec) throw new InvalidRtpParametersError('consumer has no media codec to describe to FFmpeg');
	const name = codecFromMimeType(codec.mimeType);
	const kind = name === 'opus' ? 'audio' : 'video';
	const fmtpConfig = Object.entries(codec.parameters ?? {})
		.map(([key, value]) => `${key}=${value}`)
		.join(';');
	const media: sdpTransform.MediaDescription = {
		type: kind,
		port: rtpPort,
		protocol: 'RTP/AVP',
		payloads: String(codec.payloadType),
		rtp: [
			{
				payload: codec.payloadType,
				codec: name,
				rate: codec.clockRate,
				...(codec.channels && codec.channels > 1 ? { encoding: codec.channels } : {}),
			},
		],
		fmtp: fmtpConfig ? [{ payload: codec.payloadType, config: fmtpConfig }] : [],
		direction: 'recvonly',
	};
	return sdpTransform.write({
		version: 0,
		origin: { username: '-', sessionId: 0, sessionVersion: 0, netType: 'IN', ipVer: 4, address: host },
		name: 'broadcast-relay',
		connection: { version: 4, ip: host },
		timing: { start: 0, stop: 0 },
		media: [media],
	});
}
