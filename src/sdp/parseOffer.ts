import sdpTransform from 'sdp-transform';
import type { types as ms } from 'mediasoup';
import { InvalidSdpError } from '../errors.js';

/** One m= section of a WebRTC offer, with what the relay needs of it. */
export interface OfferMedia {
	/** Always a string: sdp-transform turns numeric mids into numbers, mediasoup wants strings. */
	mid: string;
	kind: ms.MediaKind;
	direction: 'sendrecv' | 'recvonly' | 'sendonly' | 'inactive';
	/** Codecs as mediasoup capabilities, with the offer's payload types as preferredPayloadType. */
	codecs: ms.RtpCodecCapability[];
	headerExtensions: ms.RtpHeaderExtension[];
	/** SSRCs the offerer will send with (publishers), in a=ssrc order. */
	ssrcs: number[];
	/** SSRC pairs of a=ssrc-group:FID (media, rtx). */
	rtxPairs: Array<[number, number]>;
	/** RID names of simulcast layers, if any. */
	rids: string[];
	msid?: string;
	cname?: string;
	/** The original sdp-transform section, to echo what the answer must repeat. */
	raw: sdpTransform.MediaDescription;
}

/** The first section per kind that sends ('send': publishers) or receives ('receive': viewers). */
export function sectionsFor(media: readonly OfferMedia[], role: 'send' | 'receive'): Map<ms.MediaKind, OfferMedia> {
	const wanted = role === 'send' ? 'sendonly' : 'recvonly';
	const sections = new Map<ms.MediaKind, OfferMedia>();
	for (const section of media) {
		if (section.direction !== wanted && section.direction !== 'sendrecv') continue;
		if (!sections.has(section.kind)) sections.set(section.kind, section);
	}
	return sections;
}

export interface ParsedOffer {
	media: OfferMedia[];
	/** The offerer's DTLS parameters as the remote side of a mediasoup transport. */
	dtlsParameters: ms.DtlsParameters;
	iceUfrag?: string;
	icePwd?: string;
}

const MAX_SDP_BYTES = 64 * 1024;

function mediaKind(type: string): ms.MediaKind | undefined {
	return type === 'audio' || type === 'video' ? type : undefined;
}

/**
 * Parses a WebRTC offer (from a browser, werift, OBS…) with sdp-transform and
 * checks it has what a DTLS-SRTP peer must have. Throws InvalidSdpError with a
 * message that names the missing part.
 */
export function parseOffer(sdp: string): ParsedOffer {
	if (typeof sdp !== 'string' || sdp.trim().length === 0) throw new InvalidSdpError('SDP offer is empty; send an SDP offer as the body');
	if (Buffer.byteLength(sdp) > MAX_SDP_BYTES) throw new InvalidSdpError(`SDP offer is larger than ${MAX_SDP_BYTES} bytes`);
	if (!/^v=0\r?\n/.test(sdp)) throw new InvalidSdpError('SDP offer does not start with "v=0"; this is not an SDP');

	let session: sdpTransform.SessionDescription;
	try {
		session = sdpTransform.parse(sdp);
	} catch (error) {
		throw new InvalidSdpError(`SDP offer does not parse: ${(error as Error).message}`, { cause: error });
	}
	if (!Array.isArray(session.media) || session.media.length === 0) throw new InvalidSdpError('SDP offer has no m= sections');

	const fingerprint = session.fingerprint ?? session.media.find((m) => m.fingerprint)?.fingerprint;
	if (!fingerprint) throw new InvalidSdpError('SDP offer has no a=fingerprint; WebRTC needs DTLS');
	const setup = session.setup ?? session.media.find((m) => m.setup)?.setup ?? 'actpass';

	const media: OfferMedia[] = [];
	session.media.forEach((section, index) => {
		const kind = mediaKind(section.type);
		if (!kind) return; // data channels and others are ignored (rejected in the answer)
		const fbFor = (pt: number): ms.RtcpFeedback[] =>
			(section.rtcpFb ?? [])
				.filter((fb) => fb.payload === '*' || Number(fb.payload) === pt)
				.map((fb) => ({ type: fb.type, parameter: fb.subtype ?? '' }));
		const codecs: ms.RtpCodecCapability[] = (section.rtp ?? []).map((rtp) => {
			const fmtp = (section.fmtp ?? []).find((f) => f.payload === rtp.payload);
			const parameters = fmtp ? (sdpTransform.parseParams(fmtp.config) as Record<string, string | number>) : {};
			return {
				kind,
				mimeType: `${kind}/${rtp.codec}`,
				preferredPayloadType: rtp.payload,
				clockRate: rtp.rate ?? (kind === 'audio' ? 8000 : 90000),
				...(kind === 'audio' ? { channels: rtp.encoding ?? 1 } : {}),
				parameters,
				rtcpFeedback: fbFor(rtp.payload),
			};
		});
		const ssrcs: number[] = [];
		let cname: string | undefined;
		let msid: string | undefined;
		for (const line of section.ssrcs ?? []) {
			const ssrc = Number(line.id);
			if (!ssrcs.includes(ssrc)) ssrcs.push(ssrc);
			if (line.attribute === 'cname' && !cname) cname = String(line.value);
			if (line.attribute === 'msid' && !msid) msid = String(line.value);
		}
		const rtxPairs = (section.ssrcGroups ?? [])
			.filter((g) => g.semantics === 'FID')
			.map((g) => g.ssrcs.split(/\s+/).map(Number) as [number, number]);
		media.push({
			mid: section.mid !== undefined ? String(section.mid) : String(index),
			kind,
			direction: section.direction ?? session.direction ?? 'sendrecv',
			codecs,
			headerExtensions: (section.ext ?? []).map((ext) => ({ kind, uri: ext.uri, preferredId: ext.value })),
			ssrcs,
			rtxPairs,
			rids: (section.rids ?? []).filter((r) => r.direction === 'send').map((r) => String(r.id)),
			msid: msid ?? (section.msid?.[0] ? `${section.msid[0].id} ${section.msid[0].appdata ?? ''}`.trim() : undefined),
			cname,
			raw: section,
		});
	});
	if (media.length === 0) throw new InvalidSdpError('SDP offer has no audio or video m= section');

	const role: ms.DtlsRole = setup === 'active' ? 'client' : 'server';
	return {
		media,
		dtlsParameters: { role, fingerprints: [{ algorithm: fingerprint.type.toLowerCase() as ms.DtlsFingerprint['algorithm'], value: fingerprint.hash }] },
		iceUfrag: session.iceUfrag ?? session.media[0]?.iceUfrag,
		icePwd: session.icePwd ?? session.media[0]?.icePwd,
	};
}
