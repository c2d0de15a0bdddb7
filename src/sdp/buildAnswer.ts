import sdpTransform from 'sdp-transform';
import type { types as ms } from 'mediasoup';
import type { ParsedOffer } from './parseOffer.js';

/** What the answer says for one accepted m= section. */
export interface AnswerSection {
	direction: 'sendonly' | 'recvonly';
	/** The consumer's or producer's RTP parameters: codecs with the payload types that will be on the wire. */
	rtpParameters: ms.RtpParameters;
	/** For sendonly sections: announce our SSRCs so the peer demuxes by SSRC when extension ids differ. */
	send?: { cname: string; streamId: string; trackId: string };
}

export interface AnswerTransport {
	iceParameters: ms.IceParameters;
	iceCandidates: ms.IceCandidate[];
	dtlsParameters: ms.DtlsParameters;
}

/**
 * Writes the SDP answer of a mediasoup WebRtcTransport (ICE-lite, so every
 * candidate is in the answer; DTLS role active) for the given offer.
 *
 * Every offered m= section is answered, in offer order and with its mid (RFC
 * 3264 §6, RFC 8829 §5.3.1): browsers refuse an answer with fewer m= lines than
 * their offer. Sections not in `sections` (a data channel, a second video
 * section, a direction the relay does not serve) are rejected with port 0 and
 * left out of the BUNDLE group.
 */
export function buildAnswer(offer: ParsedOffer, transport: AnswerTransport, sections: ReadonlyMap<string, AnswerSection>): string {
	const fingerprint =
		transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256') ?? transport.dtlsParameters.fingerprints[0]!;
	const candidates = transport.iceCandidates.map((c, i) => ({
		foundation: c.foundation,
		component: 1,
		transport: c.protocol,
		priority: c.priority,
		ip: c.ip,
		port: c.port,
		type: c.type,
		...(c.tcpType ? { tcptype: c.tcpType } : {}),
		generation: 0,
		'network-id': i + 1,
	}));
	const first = transport.iceCandidates[0];
	const accepted: string[] = [];

	const media = offer.sections.map((offeredSection): sdpTransform.MediaDescription => {
		const section = sections.get(offeredSection.mid);
		const offered = offeredSection.media;
		if (!section || !offered) {
			const rejected: sdpTransform.MediaDescription = {
				type: offeredSection.type,
				port: 0,
				protocol: offeredSection.protocol,
				payloads: offeredSection.formats,
				rtp: [],
				fmtp: [],
				connection: { version: 4, ip: '0.0.0.0' },
				mid: offeredSection.mid,
			};
			// An RTP section keeps its codecs and says it carries nothing.
			if (offered) Object.assign(rejected, { rtp: offered.raw.rtp ?? [], direction: 'inactive' });
			// A rejected data channel repeats its SCTP port, as Chromium's answers do: werift (0.25) reads
			// the port of every m=application and refuses an answer without one, port 0 or not.
			if (offeredSection.sctpPort !== undefined) rejected.sctpPort = offeredSection.sctpPort;
			return rejected;
		}
		accepted.push(offered.mid);
		const { rtpParameters } = section;
		const description: sdpTransform.MediaDescription = {
			type: offered.kind,
			port: first?.port ?? 9,
			protocol: 'UDP/TLS/RTP/SAVPF',
			payloads: rtpParameters.codecs.map((c) => c.payloadType).join(' '),
			connection: { version: 4, ip: first?.ip ?? '0.0.0.0' },
			mid: offered.mid,
			direction: section.direction,
			iceUfrag: transport.iceParameters.usernameFragment,
			icePwd: transport.iceParameters.password,
			fingerprint: { type: fingerprint.algorithm, hash: fingerprint.value },
			setup: 'active',
			rtcpMux: 'rtcp-mux',
			rtcpRsize: 'rtcp-rsize',
			rtp: rtpParameters.codecs.map((c) => ({
				payload: c.payloadType,
				codec: c.mimeType.split('/')[1]!,
				rate: c.clockRate,
				...(c.channels && c.channels > 1 ? { encoding: c.channels } : {}),
			})),
			fmtp: rtpParameters.codecs
				.filter((c) => c.parameters && Object.keys(c.parameters).length > 0)
				.map((c) => ({
					payload: c.payloadType,
					config: Object.entries(c.parameters!)
						.map(([k, v]) => `${k}=${v}`)
						.join(';'),
				})),
			rtcpFb: rtpParameters.codecs.flatMap((c) =>
				(c.rtcpFeedback ?? []).map((fb) => ({
					payload: c.payloadType,
					type: fb.type,
					...(fb.parameter ? { subtype: fb.parameter } : {}),
				})),
			),
			ext: (rtpParameters.headerExtensions ?? []).map((e) => ({ value: e.id, uri: e.uri })),
			candidates,
			endOfCandidates: 'end-of-candidates',
		};
		if (section.send) {
			const { cname, streamId, trackId } = section.send;
			const ssrcs: NonNullable<sdpTransform.MediaDescription['ssrcs']> = [];
			const groups: NonNullable<sdpTransform.MediaDescription['ssrcGroups']> = [];
			for (const encoding of rtpParameters.encodings ?? []) {
				if (!encoding.ssrc) continue;
				const all = encoding.rtx?.ssrc ? [encoding.ssrc, encoding.rtx.ssrc] : [encoding.ssrc];
				for (const ssrc of all) {
					ssrcs.push({ id: ssrc, attribute: 'cname', value: cname });
					ssrcs.push({ id: ssrc, attribute: 'msid', value: `${streamId} ${trackId}` });
				}
				if (all.length === 2) groups.push({ semantics: 'FID', ssrcs: all.join(' ') });
			}
			description.ssrcs = ssrcs;
			if (groups.length) description.ssrcGroups = groups;
			description.msid = [{ id: streamId, appdata: trackId }];
		}
		return description;
	});

	return sdpTransform.write({
		version: 0,
		origin: { username: 'broadcast-relay', sessionId: Date.now(), sessionVersion: 1, netType: 'IN', ipVer: 4, address: '127.0.0.1' },
		name: '-',
		timing: { start: 0, stop: 0 },
		icelite: 'ice-lite',
		msidSemantic: { semantic: 'WMS', token: '*' },
		groups: accepted.length ? [{ type: 'BUNDLE', mids: accepted.join(' ') }] : [],
		media,
	});
}
