import type { types as ms } from 'mediasoup';
import { supportedCodecOf, type CodecName } from '../codecs.js';
import { UnsupportedCodecError } from '../errors.js';
import type { PublishedTrack } from '../fanout/FanOut.js';
import { sectionsFor, type OfferMedia } from '../sdp/parseOffer.js';

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
		if (!match) {
			const offered = section.codecs.map((c) => c.mimeType.split('/')[1]).filter((n) => n !== 'rtx');
			throw new UnsupportedCodecError(
				`the viewer offers ${offered.join(', ') || 'no codecs'} for ${track.kind}, but this broadcast sends ${track.codec}; offer ${track.codec}`,
			);
		}
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
