import type { types as ms } from 'mediasoup';
import { mimeTypeOf, supportedCodecOf, unsupportedCodecReason, type CodecName } from '../codecs.js';
import { UnsupportedCodecError } from '../errors.js';
import type { OfferMedia } from '../sdp/parseOffer.js';

// Header extensions mediasoup understands on the receiving side; others are left out of the answer.
const SUPPORTED_EXTENSIONS = new Set([
	'urn:ietf:params:rtp-hdrext:sdes:mid',
	'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
	'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
	'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
	'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
	'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
	'urn:3gpp:video-orientation',
	'urn:ietf:params:rtp-hdrext:toffset',
]);

const SUPPORTED_FEEDBACK = new Set(['nack', 'nack pli', 'ccm fir', 'goog-remb', 'transport-cc']);

/**
 * The RTP parameters of a producer for what a WebRTC publisher offers in one
 * section: its first supported codec (VP8 before H264 for video; Opus for
 * audio) with the offer's payload type and RTX, the header extensions
 * mediasoup reads, and the SSRCs from a=ssrc / a=ssrc-group:FID.
 */
export function producerParametersFromOffer(section: OfferMedia): { codec: CodecName; rtpParameters: ms.RtpParameters } {
	const preference: CodecName[] = section.kind === 'video' ? ['VP8', 'H264'] : ['opus'];
	let chosen: { codec: CodecName; capability: ms.RtpCodecCapability } | undefined;
	for (const wanted of preference) {
		const capability = section.codecs.find((c) => supportedCodecOf(c) === wanted);
		if (capability) {
			chosen = { codec: wanted, capability };
			break;
		}
	}
	if (!chosen) {
		const offered = section.codecs.map((c) => c.mimeType.split('/')[1]).filter((n) => !/^(rtx|red|ulpfec|flexfec-03)$/i.test(n ?? ''));
		// Say why a codec of the right name was not taken (an H264 profile, a clock rate).
		const reasons = new Set(section.codecs.filter((c) => preference.some((p) => c.mimeType.toLowerCase() === mimeTypeOf(p).toLowerCase())).map(unsupportedCodecReason));
		reasons.delete(undefined);
		throw new UnsupportedCodecError(
			`the offer sends ${section.kind} as ${offered.join(', ') || 'nothing'}; publish ${section.kind === 'video' ? 'VP8 or H264 (constrained baseline, packetization-mode 1)' : 'Opus'}${reasons.size ? ` (${[...reasons].join('; ')})` : ''}`,
		);
	}
	const { codec, capability } = chosen;
	const payloadType = capability.preferredPayloadType!;
	const rtcpFeedback = (capability.rtcpFeedback ?? []).filter((fb) => SUPPORTED_FEEDBACK.has(`${fb.type} ${fb.parameter ?? ''}`.trim()));
	const codecs: ms.RtpCodecParameters[] = [
		{
			mimeType: mimeTypeOf(codec),
			payloadType,
			clockRate: capability.clockRate,
			...(codec === 'opus' ? { channels: 2 } : {}),
			parameters: capability.parameters ?? {},
			rtcpFeedback,
		},
	];
	const rtx = section.codecs.find((c) => /\/rtx$/i.test(c.mimeType) && Number(c.parameters?.apt) === payloadType);
	if (rtx) codecs.push({ mimeType: `${section.kind}/rtx`, payloadType: rtx.preferredPayloadType!, clockRate: rtx.clockRate, parameters: { apt: payloadType }, rtcpFeedback: [] });

	const pair = section.rtxPairs[0];
	const encodings: ms.RtpEncodingParameters[] = section.rids.length
		? section.rids.map((rid) => ({ rid }))
		: pair
			? [{ ssrc: pair[0], ...(rtx ? { rtx: { ssrc: pair[1] } } : {}) }]
			: section.ssrcs.length
				? [{ ssrc: section.ssrcs[0]! }]
				: [{}];
	return {
		codec,
		rtpParameters: {
			mid: section.mid,
			codecs,
			headerExtensions: section.headerExtensions
				.filter((ext) => SUPPORTED_EXTENSIONS.has(ext.uri))
				.map((ext) => ({ uri: ext.uri as ms.RtpHeaderExtensionParameters['uri'], id: ext.preferredId })),
			encodings,
			rtcp: { cname: section.cname ?? `publisher-${section.mid}`, reducedSize: true },
		},
	};
}
