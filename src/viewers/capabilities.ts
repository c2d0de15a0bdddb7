import type { types as ms } from 'mediasoup';
import { mimeTypeOf, supportedCodecOf, unsupportedCodecReason, type CodecName } from '../codecs.js';
import { UnsupportedCodecError } from '../errors.js';
import type { PublishedTrack } from '../fanout/FanOut.js';
import { sectionsFor, type OfferMedia } from '../sdp/parseOffer.js';

/** How the relay sends each codec to viewers: what a viewer's offer must contain. */
const SENT_AS: Record<CodecName, string> = {
	VP8: 'VP8/90000',
	H264: 'H264 Constrained Baseline with packetization-mode 1 (a=fmtp:<pt> profile-level-id=42e01f;packetization-mode=1, or 42c01f)',
	opus: 'opus/48000/2',
};

/**
 * Why a viewer's section cannot receive `codec`. When the viewer offers the
 * codec by name but not in a form the relay sends (an H264 profile other than
 * Constrained Baseline, packetization-mode 0, a wrong clock rate), the reason
 * names what was offered; "offers H264 … sends H264" told the client nothing.
 */
function refusal(section: OfferMedia, codec: CodecName): string {
	const offered = [...new Set(section.codecs.map((c) => c.mimeType.split('/')[1]!).filter((n) => !/^(rtx|red|ulpfec|flexfec-03)$/i.test(n)))];
	const sameName = section.codecs.filter((c) => c.mimeType.toLowerCase() === mimeTypeOf(codec).toLowerCase());
	// The facts only ("H264 profile-level-id 640c1f is Constrained High"): what follows a reason's ";" is advice to publishers.
	const reasons = [...new Set(sameName.map((c) => unsupportedCodecReason(c)?.split(';')[0]).filter((r): r is string => r !== undefined))];
	const sends = `this broadcast sends ${SENT_AS[codec]}`;
	if (reasons.length > 0) return `the viewer offers ${codec} for ${section.kind}, but not as the relay sends it (${reasons.join('; ')}); ${sends}: offer that`;
	return `the viewer offers ${offered.join(', ') || 'no codecs'} for ${section.kind}, but ${sends}: offer ${codec}`;
}

/**
 * The payload type the viewer offers for each published track's codec. The
 * viewer's router is made with these, because a browser only decodes when the
 * consumer sends the payload type it offered.
 */
export function viewerPayloadTypes(
	media: readonly OfferMedia[],
	tracks: readonly PublishedTrack[],
): Partial<Record<CodecName, number>> {
	const sections = sectionsFor(media, 'receive');
	const payloadTypes: Partial<Record<CodecName, number>> = {};
	for (const track of tracks) {
		const section = sections.get(track.kind);
		if (!section) continue;
		const match = section.codecs.find((c) => supportedCodecOf(c) === track.codec);
		if (!match) throw new UnsupportedCodecError(refusal(section, track.codec));
		payloadTypes[track.codec] = match.preferredPayloadType!;
	}
	if (Object.keys(payloadTypes).length === 0) {
		throw new UnsupportedCodecError('the offer has no recvonly audio or video section this broadcast can fill; offer to receive video');
	}
	return payloadTypes;
}

/**
 * The capabilities to consume with: the router's, narrowed to what the viewer
 * offered with the same payload types (RTX only when its payload type matches
 * too) and header extensions with the same ids. Feedback is what both support.
 */
export function consumeCapabilities(router: ms.RtpCapabilities, section: OfferMedia): ms.RtpCapabilities {
	const offered = section.codecs;
	const codecs: ms.RtpCodecCapability[] = [];
	for (const codec of router.codecs ?? []) {
		if (codec.kind !== section.kind) continue;
		const same = offered.find(
			(o) => o.preferredPayloadType === codec.preferredPayloadType && o.mimeType.toLowerCase() === codec.mimeType.toLowerCase(),
		);
		if (!same) continue;
		if (/\/rtx$/i.test(codec.mimeType) && Number(same.parameters?.apt) !== Number(codec.parameters?.apt)) continue;
		codecs.push({
			...codec,
			rtcpFeedback: (codec.rtcpFeedback ?? []).filter((fb) =>
				(same.rtcpFeedback ?? []).some((o) => o.type === fb.type && (o.parameter ?? '') === (fb.parameter ?? '')),
			),
		});
	}
	const headerExtensions = (router.headerExtensions ?? []).filter(
		(ext) => ext.kind === section.kind && section.headerExtensions.some((o) => o.uri === ext.uri && o.preferredId === ext.preferredId),
	);
	return { codecs, headerExtensions };
}
