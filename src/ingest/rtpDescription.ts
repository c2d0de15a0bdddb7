import sdpTransform from 'sdp-transform';
import type { types as ms } from 'mediasoup';
import { codecFromMimeType, kindOf, type CodecName } from '../codecs.js';
import { InvalidRtpParametersError, InvalidSdpError } from '../errors.js';
import { plainProducerParameters } from '../producerParameters.js';

/** What an external encoder sends over plain RTP, one stream. */
export interface RtpStreamDescription {
	/** "VP8", "H264" or "opus" (mime types like "video/VP8" are accepted too). */
	codec: string;
	/** Payload type on the wire, 96-127 (or a static type the codec has). */
	payloadType: number;
	/** SSRC on the wire. */
	ssrc: number;
	/** Codec parameters (fmtp), e.g. H264 packetization-mode. */
	parameters?: Record<string, string | number>;
}

function checkInteger(value: unknown, name: string, min: number, max: number): number {
	if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
		throw new InvalidRtpParametersError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
	}
	return value;
}

/** Turns a stream description into mediasoup RTP parameters for a producer. */
export function rtpParametersFromDescription(description: RtpStreamDescription): { kind: ms.MediaKind; codec: CodecName; rtpParameters: ms.RtpParameters } {
	if (!description || typeof description !== 'object') throw new InvalidRtpParametersError('stream description must be an object with codec, payloadType and ssrc');
	if (typeof description.codec !== 'string') throw new InvalidRtpParametersError('codec must be a string such as "VP8", "H264" or "opus"');
	const codec = codecFromMimeType(description.codec);
	const payloadType = checkInteger(description.payloadType, 'payloadType', 0, 127);
	const ssrc = checkInteger(description.ssrc, 'ssrc', 1, 0xffffffff);
	return { kind: kindOf(codec), codec, rtpParameters: plainProducerParameters({ codec, payloadType, ssrc, parameters: description.parameters }) };
}

/**
 * Reads stream descriptions from a plain-RTP SDP (what `ffmpeg -sdp_file` or
 * GStreamer write). Each m= section needs an a=ssrc line, since the relay
 * demultiplexes by SSRC.
 */
export function descriptionsFromSdp(sdp: string): RtpStreamDescription[] {
	if (typeof sdp !== 'string' || !/^v=0\r?\n/.test(sdp)) throw new InvalidSdpError('RTP ingest SDP must start with "v=0"');
	const session = sdpTransform.parse(sdp);
	if (!session.media?.length) throw new InvalidSdpError('RTP ingest SDP has no m= sections');
	return session.media.map((media, index) => {
		const rtp = media.rtp?.[0];
		if (!rtp) throw new InvalidSdpError(`m= section ${index} has no a=rtpmap; add one for its payload type`);
		const ssrc = media.ssrcs?.[0]?.id;
		if (ssrc === undefined) throw new InvalidSdpError(`m= section ${index} has no a=ssrc line; the relay needs the SSRC the encoder sends with`);
		const fmtp = media.fmtp?.find((f) => f.payload === rtp.payload);
		return {
			codec: rtp.codec,
			payloadType: rtp.payload,
			ssrc: Number(ssrc),
			parameters: fmtp ? (sdpTransform.parseParams(fmtp.config) as Record<string, string | number>) : undefined,
		};
	});
}
