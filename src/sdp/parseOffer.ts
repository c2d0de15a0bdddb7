import sdpTransform from 'sdp-transform';
import type { types as ms } from 'mediasoup';
import { InvalidSdpError } from '../errors.js';
import { checkCodecName, checkFingerprint, checkIceCredential, checkMid, checkRid, integerIn, isToken, parseFmtp, text } from './offerChecks.js';

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

/**
 * Any m= section of the offer, in offer order: what the answer needs to answer
 * each, served or not (RFC 3264 §6: one answer m= line per offer m= line).
 */
export interface OfferSection {
	mid: string;
	/** The m= line's media, e.g. "video", or "application" for a data channel. */
	type: string;
	protocol: string;
	/** The m= line's formats as offered ("96 97", "webrtc-datachannel"). */
	formats: string;
	/** A data channel's a=sctp-port (RFC 8841), when offered. */
	sctpPort?: number;
	/** The parsed audio or video section; undefined for others (data channels), which the relay never serves. */
	media?: OfferMedia;
}

export interface ParsedOffer {
	/** The audio and video sections, checked. */
	media: OfferMedia[];
	/** Every m= section, audio, video or not, in offer order. */
	sections: OfferSection[];
	/** The offerer's DTLS parameters as the remote side of a mediasoup transport. */
	dtlsParameters: ms.DtlsParameters;
	iceUfrag?: string;
	icePwd?: string;
}

const MAX_SDP_BYTES = 64 * 1024;
const MAX_SECTIONS = 16;
const MAX_SSRC = 2 ** 32 - 1;
const DIRECTIONS = new Set(['sendrecv', 'recvonly', 'sendonly', 'inactive']);
const SETUPS = new Set(['actpass', 'active', 'passive']);
/** An m= line's formats: 1-64 space-separated tokens (payload types, "webrtc-datachannel", an SCTP port). */
const FORMATS = /^[A-Za-z0-9!#$%&'*+.^_`{|}~\/-]{1,64}(?: [A-Za-z0-9!#$%&'*+.^_`{|}~\/-]{1,64}){0,63}$/;

function mediaKind(type: string): ms.MediaKind | undefined {
	return type === 'audio' || type === 'video' ? type : undefined;
}

/** The codecs of one section, every rtpmap/fmtp/rtcp-fb value checked; a payload type mapped twice is an error. */
function sectionCodecs(section: sdpTransform.MediaDescription, kind: ms.MediaKind, where: string): ms.RtpCodecCapability[] {
	const formats = text(section.payloads)?.trim() ?? '';
	const payloads = formats ? formats.split(/\s+/).map((p) => integerIn(p, 0, 127)) : [];
	if (payloads.some((p) => p === undefined)) throw new InvalidSdpError(`${where}: the m= line lists "${formats.slice(0, 60)}"; formats must be payload types 0-127`);
	const seen = new Set<number>();
	return (section.rtp ?? []).map((rtp) => {
		const payloadType = integerIn(rtp.payload, 0, 127);
		if (payloadType === undefined) throw new InvalidSdpError(`${where}: a=rtpmap:${text(rtp.payload) ?? ''} is not a payload type 0-127`);
		if (seen.has(payloadType)) throw new InvalidSdpError(`${where}: payload type ${payloadType} has two a=rtpmap lines`);
		seen.add(payloadType);
		const name = checkCodecName(rtp.codec, `${where}, a=rtpmap:${payloadType}`);
		const clockRate = integerIn(rtp.rate, 1, 10_000_000);
		if (clockRate === undefined) throw new InvalidSdpError(`${where}: a=rtpmap:${payloadType} ${name} has no valid clock rate (e.g. ${name}/90000)`);
		let channels = 1;
		if (kind === 'audio' && rtp.encoding !== undefined) {
			const parsed = integerIn(rtp.encoding, 1, 8);
			if (parsed === undefined) throw new InvalidSdpError(`${where}: a=rtpmap:${payloadType} ${name} has an invalid channel count`);
			channels = parsed;
		}
		const fmtp = (section.fmtp ?? []).find((f) => integerIn(f.payload, 0, 127) === payloadType);
		const rtcpFeedback = (section.rtcpFb ?? [])
			.filter((fb) => fb.payload === '*' || integerIn(fb.payload, 0, 127) === payloadType)
			.filter((fb) => isToken(fb.type) && (fb.subtype === undefined || isToken(fb.subtype)))
			.map((fb) => ({ type: fb.type, parameter: fb.subtype ?? '' }));
		return {
			kind,
			mimeType: `${kind}/${name}`,
			preferredPayloadType: payloadType,
			clockRate,
			...(kind === 'audio' ? { channels } : {}),
			parameters: fmtp ? parseFmtp(fmtp.config) : {},
			rtcpFeedback,
		};
	});
}

/** Header extensions with ids mediasoup takes (1-255, each once); an unusable id is an error. */
function sectionExtensions(section: sdpTransform.MediaDescription, kind: ms.MediaKind, where: string): ms.RtpHeaderExtension[] {
	const ids = new Set<number>();
	return (section.ext ?? []).map((ext) => {
		const id = integerIn(ext.value, 1, 255);
		if (id === undefined) throw new InvalidSdpError(`${where}: a=extmap:${text(ext.value) ?? ''} has no valid id (1-255)`);
		if (ids.has(id)) throw new InvalidSdpError(`${where}: a=extmap id ${id} is used twice`);
		ids.add(id);
		const uri = text(ext.uri) ?? '';
		if (!/^\S{1,256}$/.test(uri)) throw new InvalidSdpError(`${where}: a=extmap:${id} has no valid URI`);
		return { kind, uri, preferredId: id };
	});
}

/**
 * Parses a WebRTC offer (from a browser, werift, OBS…) with sdp-transform and
 * checks every value the relay uses before it reaches sdp-transform's helpers
 * or mediasoup: payload types, clock rates, fmtp parameters, header extension
 * ids, MIDs and SSRCs (each unique across the offer, as mediasoup requires),
 * RIDs, the DTLS fingerprint and setup role. Throws InvalidSdpError (HTTP 400)
 * with a message that names the line to fix.
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
	if (session.media.length > MAX_SECTIONS) throw new InvalidSdpError(`SDP offer has more than ${MAX_SECTIONS} m= sections`);

	const fingerprint = checkFingerprint(session.fingerprint ?? session.media.find((m) => m.fingerprint)?.fingerprint);
	const setup = text(session.setup ?? session.media.find((m) => m.setup)?.setup) ?? 'actpass';
	if (!SETUPS.has(setup)) throw new InvalidSdpError(`a=setup:${setup.slice(0, 20)} is not valid; an offer says a=setup:actpass`);
	const iceUfrag = checkIceCredential(session.iceUfrag ?? session.media[0]?.iceUfrag, 'ice-ufrag');
	const icePwd = checkIceCredential(session.icePwd ?? session.media[0]?.icePwd, 'ice-pwd');

	const media: OfferMedia[] = [];
	const sections: OfferSection[] = [];
	const mids = new Set<string>();
	const ssrcOwners = new Map<number, string>();
	session.media.forEach((section, index) => {
		const where = `m= section ${index + 1}`;
		if (!isToken(section.type) || integerIn(section.port, 0, 65535) === undefined || !isToken(section.protocol)) {
			throw new InvalidSdpError(`${where}: the m= line is not "m=<media> <port> <protocol> <formats>"`);
		}
		const mid = section.mid !== undefined ? checkMid(section.mid, where) : String(index);
		if (mids.has(mid)) throw new InvalidSdpError(`two m= sections have mid ${mid}; give each its own a=mid`);
		mids.add(mid);
		// The formats are echoed in the answer, served or not (audio and video ones are payload types, checked below).
		const formats = (text(section.payloads) ?? '').trim().split(/\s+/).filter(Boolean).join(' ');
		const kind = mediaKind(section.type);
		if (!kind) {
			// Data channels and other media the relay does not serve: rejected in the answer (port 0).
			if (!FORMATS.test(formats)) throw new InvalidSdpError(`${where}: the m= line lists no valid formats ("${formats.slice(0, 60)}")`);
			const sctpPort = integerIn(section.sctpPort, 1, 65535);
			sections.push({ mid, type: section.type, protocol: section.protocol, formats, ...(sctpPort !== undefined ? { sctpPort } : {}) });
			return;
		}
		const direction = text(section.direction ?? session.direction) ?? 'sendrecv';
		if (!DIRECTIONS.has(direction)) throw new InvalidSdpError(`${where}: direction ${direction} is not valid`);

		const codecs = sectionCodecs(section, kind, where);
		const ssrcs: number[] = [];
		let cname: string | undefined;
		let msid: string | undefined;
		for (const line of section.ssrcs ?? []) {
			const ssrc = integerIn(line.id, 0, MAX_SSRC);
			if (ssrc === undefined) throw new InvalidSdpError(`${where}: a=ssrc:${text(line.id)?.slice(0, 20) ?? ''} is not an SSRC (0-${MAX_SSRC})`);
			const owner = ssrcOwners.get(ssrc);
			if (owner !== undefined && owner !== mid) throw new InvalidSdpError(`SSRC ${ssrc} is in m= sections ${owner} and ${mid}; each SSRC belongs to one`);
			ssrcOwners.set(ssrc, mid);
			if (!ssrcs.includes(ssrc)) ssrcs.push(ssrc);
			const value = text(line.value);
			if (line.attribute === 'cname' && !cname && value && /^\S{1,255}$/.test(value)) cname = value;
			if (line.attribute === 'msid' && !msid && value && value.length <= 255) msid = value;
		}
		const rtxPairs = (section.ssrcGroups ?? [])
			.filter((g) => g.semantics === 'FID')
			.map((g) => {
				const pair = (text(g.ssrcs) ?? '').trim().split(/\s+/).map((s) => integerIn(s, 0, MAX_SSRC));
				if (pair.length !== 2 || pair.some((s) => s === undefined) || pair[0] === pair[1]) {
					throw new InvalidSdpError(`${where}: a=ssrc-group:FID needs two different SSRCs (media, then RTX)`);
				}
				for (const ssrc of pair as number[]) {
					const owner = ssrcOwners.get(ssrc);
					if (owner !== undefined && owner !== mid) throw new InvalidSdpError(`SSRC ${ssrc} is in m= sections ${owner} and ${mid}; each SSRC belongs to one`);
					ssrcOwners.set(ssrc, mid);
				}
				return pair as [number, number];
			});
		const rids = (section.rids ?? []).filter((r) => r.direction === 'send').map((r) => checkRid(r.id, where));
		if (new Set(rids).size !== rids.length) throw new InvalidSdpError(`${where}: a RID is listed twice`);
		const sectionMsid = section.msid?.[0];
		const msidLine = sectionMsid ? `${text(sectionMsid.id) ?? ''} ${text(sectionMsid.appdata) ?? ''}`.trim() : undefined;
		const parsed: OfferMedia = {
			mid,
			kind,
			direction: direction as OfferMedia['direction'],
			codecs,
			headerExtensions: sectionExtensions(section, kind, where),
			ssrcs,
			rtxPairs,
			rids,
			msid: msid ?? (msidLine && msidLine.length <= 255 ? msidLine : undefined),
			cname,
			raw: section,
		};
		media.push(parsed);
		sections.push({ mid, type: section.type, protocol: section.protocol, formats, media: parsed });
	});
	if (media.length === 0) throw new InvalidSdpError('SDP offer has no audio or video m= section');
	// One transport carries every section (BUNDLE): a payload type means one codec across them
	// (RFC 8843 §9.1), or a viewer router pinned to the offer's payload types could not be made.
	const codecOfPayloadType = new Map<number, { codec: string; mid: string }>();
	for (const section of media) {
		for (const codec of section.codecs) {
			const key = `${codec.mimeType.toLowerCase()}/${codec.clockRate}/${codec.channels ?? 1}`;
			const seen = codecOfPayloadType.get(codec.preferredPayloadType!);
			if (seen && seen.codec !== key) {
				throw new InvalidSdpError(
					`payload type ${codec.preferredPayloadType} is ${seen.codec} in m= section ${seen.mid} and ${key} in ${section.mid}; a bundled payload type means one codec`,
				);
			}
			codecOfPayloadType.set(codec.preferredPayloadType!, { codec: key, mid: section.mid });
		}
	}

	const role: ms.DtlsRole = setup === 'active' ? 'client' : 'server';
	return {
		media,
		sections,
		dtlsParameters: { role, fingerprints: [fingerprint] },
		...(iceUfrag ? { iceUfrag } : {}),
		...(icePwd ? { icePwd } : {}),
	};
}
