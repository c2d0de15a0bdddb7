import type { types as ms } from 'mediasoup';
import { kindOf, routerCodec, type CodecName } from './codecs.js';

/**
 * RTP parameters of a producer fed one plain RTP stream (an external encoder,
 * or FFmpeg in the re-encoder): one codec with the sender's payload type and
 * SSRC. Video accepts PLI and FIR, which mediasoup then sends to the sender.
 */
export function plainProducerParameters(options: {
	codec: CodecName;
	payloadType: number;
	ssrc: number;
	/** Codec parameters (fmtp) on top of the router codec's, e.g. H264 packetization-mode. */
	parameters?: Record<string, string | number>;
}): ms.RtpParameters {
	const { codec, payloadType, ssrc, parameters } = options;
	const base = routerCodec(codec);
	return {
		codecs: [
			{
				mimeType: base.mimeType,
				payloadType,
				clockRate: base.clockRate,
				...(base.channels ? { channels: base.channels } : {}),
				parameters: { ...(base.parameters ?? {}), ...(parameters ?? {}) },
				rtcpFeedback: kindOf(codec) === 'video' ? [{ type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }] : [],
			},
		],
		encodings: [{ ssrc }],
	};
}
