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

/** Header extensions mediasoup's workers write (and the viewer's ids for them decide how they are sent). */
const SENDABLE_EXTENSIONS = new Set([
	'urn:ietf:params:rtp-hdrext:sdes:mid',
	'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
	'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
	'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
	'urn:3gpp:video-orientation',
	'urn:ietf:params:rtp-hdrext:toffset',
	'http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time',
]);

/**
 * The viewer's own ids for the header extensions the relay sends, by URI. A
 * WHEP viewer is the offerer, so it picks the ids, and a browser refuses an
 * answer that changes them; the viewer's router takes these ids (see
 * FanOut.assign), so its consumers are negotiated with them, and the worker
 * sends each consumer's packets with them (worker patch 0002). Without
 * transport-cc under the viewer's id there is no bandwidth estimation, and
 * a simulcast ladder could not adapt. One-byte ids (1-14) only; a URI offered
 * with two ids (audio and video apart) is left out.
 */
export function viewerExtensionIds(media: readonly OfferMedia[], tracks: readonly PublishedTrack[]): Record<string, number> {
	const sections = sectionsFor(media, 'receive');
	const ids: Record<string, number> = {};
	const conflicting = new Set<string>();
	for (const track of tracks) {
		for (const ext of sections.get(track.kind)?.headerExtensions ?? []) {
			const id = ext.preferredId;
			if (!SENDABLE_EXTENSIONS.has(ext.uri) || id === undefined || id < 1 || id > 14) continue;
			if (ids[ext.uri] !== undefined && ids[ext.uri] !== id) conflicting.add(ext.uri);
			ids[ext.uri] = id;
		}
	}
	for (const uri of conflicting) delete ids[uri];
	return ids;
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
