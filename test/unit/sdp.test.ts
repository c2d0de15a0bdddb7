import { describe, expect, it } from 'vitest';
import { InvalidSdpError } from '../../src/errors.js';
import { buildAnswer } from '../../src/sdp/buildAnswer.js';
import { parseOffer } from '../../src/sdp/parseOffer.js';

const FINGERPRINT = 'AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99';

const chromeLikeOffer = [
	'v=0',
	'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
	's=-',
	't=0 0',
	'a=group:BUNDLE 0 1',
	'm=audio 9 UDP/TLS/RTP/SAVPF 111',
	'c=IN IP4 0.0.0.0',
	'a=ice-ufrag:abcd',
	'a=ice-pwd:abcdefghijklmnopqrstuvwx',
	'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
	'a=setup:actpass',
	'a=mid:0',
	'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
	'a=recvonly',
	'a=rtcp-mux',
	'a=rtpmap:111 opus/48000/2',
	'a=fmtp:111 minptime=10;useinbandfec=1',
	'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
	'c=IN IP4 0.0.0.0',
	'a=mid:1',
	'a=recvonly',
	'a=rtcp-mux',
	'a=rtpmap:96 VP8/90000',
	'a=rtcp-fb:96 nack',
	'a=rtcp-fb:96 nack pli',
	'a=rtpmap:97 rtx/90000',
	'a=fmtp:97 apt=96',
	'',
].join('\r\n');

describe('SDP offers and answers', () => {
	it('parses numeric mids as strings, codecs with the offer payload types, and the DTLS fingerprint', () => {
		const offer = parseOffer(chromeLikeOffer);
		expect(offer.media.map((m) => m.mid)).toEqual(['0', '1']);
		expect(offer.media[1]!.codecs.map((c) => [c.mimeType, c.preferredPayloadType])).toEqual([
			['video/VP8', 96],
			['video/rtx', 97],
		]);
		expect(offer.media[1]!.codecs[0]!.rtcpFeedback).toEqual([
			{ type: 'nack', parameter: '' },
			{ type: 'nack', parameter: 'pli' },
		]);
		expect(offer.media[0]!.headerExtensions).toEqual([{ kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 4 }]);
		expect(offer.dtlsParameters.fingerprints[0]!.algorithm).toBe('sha-256');
		expect(offer.dtlsParameters.role).toBe('server');
	});

	it('rejects garbage with InvalidSdpError', () => {
		expect(() => parseOffer('')).toThrow(InvalidSdpError);
		expect(() => parseOffer('not sdp')).toThrow(/v=0/);
		expect(() => parseOffer(`v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 ${FINGERPRINT}\r\n`)).toThrow(
			/no audio or video/,
		);
		expect(() => parseOffer(`v=0\r\n${'a=x\r\n'.repeat(20_000)}`)).toThrow(/larger than/);
	});

	it('answers ICE-lite with every candidate, active DTLS, and rejects sections it does not fill', () => {
		const offer = parseOffer(chromeLikeOffer);
		const answer = buildAnswer(
			offer,
			{
				iceParameters: { usernameFragment: 'uf', password: 'pw', iceLite: true },
				iceCandidates: [{ foundation: 'udpcandidate', priority: 1076302079, ip: '127.0.0.1', protocol: 'udp', port: 40001, type: 'host' }],
				dtlsParameters: { role: 'auto', fingerprints: [{ algorithm: 'sha-256', value: '11:22' }] },
			},
			new Map([
				[
					'1',
					{
						direction: 'sendonly',
						rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, rtcpFeedback: [{ type: 'nack', parameter: 'pli' }] }], encodings: [{ ssrc: 42 }] },
						send: { cname: 'c', streamId: 's', trackId: 't' },
					},
				],
			]),
		);
		expect(answer).toContain('a=ice-lite');
		expect(answer).toContain('a=group:BUNDLE 1');
		expect(answer).toMatch(/m=audio 0 /);
		expect(answer).toContain('m=video 40001 UDP/TLS/RTP/SAVPF 96');
		expect(answer).toContain('a=setup:active');
		expect(answer).toContain('a=candidate:udpcandidate 1 udp 1076302079 127.0.0.1 40001 typ host');
		expect(answer).toContain('a=ssrc:42 cname:c');
		expect(answer).toContain('a=msid:s t');
		expect(answer).toContain('a=sendonly');
	});

	it('answers every offered m= section in order with its mid, a data channel and unserved sections rejected with port 0 and outside BUNDLE (issue 8 §7)', () => {
		// A data channel opened before the transceivers (Chromium puts it first), then audio and video; the relay serves video only.
		const withDataChannel = chromeLikeOffer
			.replace('a=group:BUNDLE 0 1', 'a=group:BUNDLE dc 0 1')
			.replace('m=audio 9', ['m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', 'a=mid:dc', 'a=sctp-port:5000', 'a=max-message-size:262144', 'm=audio 9'].join('\r\n'));
		const offer = parseOffer(withDataChannel);
		expect(offer.media.map((m) => m.mid)).toEqual(['0', '1']);
		expect(offer.sections.map((s) => [s.type, s.mid])).toEqual([
			['application', 'dc'],
			['audio', '0'],
			['video', '1'],
		]);
		const answer = buildAnswer(
			offer,
			{
				iceParameters: { usernameFragment: 'uf', password: 'pw', iceLite: true },
				iceCandidates: [{ foundation: 'udpcandidate', priority: 1076302079, ip: '127.0.0.1', protocol: 'udp', port: 40001, type: 'host' }],
				dtlsParameters: { role: 'auto', fingerprints: [{ algorithm: 'sha-256', value: '11:22' }] },
			},
			new Map([['1', { direction: 'sendonly', rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000 }], encodings: [{ ssrc: 42 }] } }]]),
		);
		// It was two m= lines (audio rejected, video), and no m=application: Chromium refuses that answer.
		const mLines = answer.split('\r\n').filter((l) => l.startsWith('m='));
		expect(mLines).toEqual(['m=application 0 UDP/DTLS/SCTP webrtc-datachannel', 'm=audio 0 UDP/TLS/RTP/SAVPF 111', 'm=video 40001 UDP/TLS/RTP/SAVPF 96']);
		expect(answer.match(/^a=mid:.*$/gm)).toEqual(['a=mid:dc', 'a=mid:0', 'a=mid:1']);
		expect(answer).toContain('a=group:BUNDLE 1\r\n');
		// The rejected data channel repeats its SCTP port (werift refuses an m=application without one), and no RTP attributes.
		const application = answer.slice(answer.indexOf('m=application'), answer.indexOf('m=audio'));
		expect(application).toContain('a=sctp-port:5000');
		expect(application).not.toMatch(/rtpmap|candidate|ice-ufrag|a=(sendonly|recvonly|inactive)/);
	});

	it('an unserved m= section whose formats are garbage is a 400, not echoed into the answer', () => {
		const garbled = chromeLikeOffer.replace('m=audio 9', ['m=application 9 UDP/DTLS/SCTP web<rtc>', 'a=mid:dc', 'm=audio 9'].join('\r\n'));
		expect(() => parseOffer(garbled)).toThrow(InvalidSdpError);
		expect(() => parseOffer(garbled)).toThrow(/no valid formats/);
	});

	describe('client values are checked before sdp-transform helpers or mediasoup see them (issue 8 §2: these were 500s)', () => {
		const withLine = (after: string, line: string): string => chromeLikeOffer.replace(`${after}\r\n`, `${after}\r\n${line}\r\n`);
		const replaced = (line: string, by: string): string => chromeLikeOffer.replace(`${line}\r\n`, by ? `${by}\r\n` : '');

		it('a garbled a=fmtp line (sdp-transform reads "111" as a number and parseParams threw TypeError) parses, keeping only well-formed parameters', () => {
			const offer = parseOffer(replaced('a=fmtp:97 apt=96', 'a=fmtp:97 111'));
			expect(offer.media[1]!.codecs[1]!.parameters).toEqual({ '111': '' });
			const garbled = parseOffer(replaced('a=fmtp:111 minptime=10;useinbandfec=1', 'a=fmtp:111 minptime=10;;=x;a b=1;useinbandfec;profile-level-id=420029'));
			expect(garbled.media[0]!.codecs[0]!.parameters).toEqual({ minptime: 10, useinbandfec: '', 'profile-level-id': '420029' });
		});

		it('two m= sections with one mid ("MID already exists in RTP listener"), or an empty or garbage mid, are a 400', () => {
			expect(() => parseOffer(replaced('a=mid:1', 'a=mid:0'))).toThrow(/two m= sections have mid 0/);
			expect(() => parseOffer(replaced('a=mid:1', 'a=mid:'))).toThrow(InvalidSdpError);
			expect(() => parseOffer(replaced('a=mid:1', 'a=mid:<script>'))).toThrow(/not a valid MID/);
			expect(() => parseOffer(replaced('a=mid:1', `a=mid:${'a'.repeat(17)}`))).toThrow(/not a valid MID/);
			// A section without a=mid takes its index, which must not collide either.
			expect(parseOffer(replaced('a=mid:1', '')).media.map((m) => m.mid)).toEqual(['0', '1']);
		});

		it('an SSRC in two sections, or an RTX pair of one SSRC, is a 400 ("ssrc already exists in RTP listener")', () => {
			const twice = withLine('a=mid:1', 'a=ssrc:1111 cname:x').replace('a=mid:0\r\n', 'a=mid:0\r\na=ssrc:1111 cname:x\r\n');
			expect(() => parseOffer(twice)).toThrow(/SSRC 1111 is in m= sections 0 and 1/);
			expect(() => parseOffer(withLine('a=mid:1', 'a=ssrc-group:FID 5 5'))).toThrow(/FID needs two different SSRCs/);
			expect(() => parseOffer(withLine('a=mid:1', 'a=ssrc-group:FID 5'))).toThrow(InvalidSdpError);
			// sdp-transform drops a line it cannot match at all; nothing of it reaches mediasoup.
			expect(parseOffer(withLine('a=mid:1', 'a=ssrc:abc cname:x')).media[1]!.ssrcs).toEqual([]);
			expect(() => parseOffer(withLine('a=mid:1', 'a=ssrc:4294967296 cname:x'))).toThrow(/not an SSRC/);
		});

		it('header extension ids mediasoup refuses ("invalid id 0"), or one id twice, are a 400', () => {
			expect(() => parseOffer(replaced('a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid', 'a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid'))).toThrow(/no valid id/);
			expect(() => parseOffer(withLine('a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid', 'a=extmap:4 urn:ietf:params:rtp-hdrext:toffset'))).toThrow(/id 4 is used twice/);
		});

		it('fingerprints mediasoup cannot use ("invalid fingerprint.algorithm value") are a 400 that names the algorithms it takes', () => {
			expect(() => parseOffer(chromeLikeOffer.replace('a=fingerprint:sha-256', 'a=fingerprint:md5'))).toThrow(/use one of sha-1, sha-224, sha-256/);
			expect(() => parseOffer(chromeLikeOffer.replace(FINGERPRINT, 'AA:BB'))).toThrow(/32 hexadecimal bytes/);
			expect(parseOffer(chromeLikeOffer.replace(FINGERPRINT, FINGERPRINT.toLowerCase())).dtlsParameters.fingerprints[0]!.value).toBe(FINGERPRINT);
			expect(() => parseOffer(chromeLikeOffer.replace('a=setup:actpass', 'a=setup:bogus'))).toThrow(/a=setup:bogus/);
		});

		it('payload types, clock rates and channel counts must be numbers in range, each payload type mapped once', () => {
			expect(() => parseOffer(replaced('a=rtpmap:96 VP8/90000', 'a=rtpmap:96 VP8/abc'))).toThrow(/no valid clock rate/);
			expect(() => parseOffer(replaced('a=rtpmap:96 VP8/90000', 'a=rtpmap:96 VP8/'))).toThrow(/no valid clock rate/);
			expect(() => parseOffer(withLine('a=rtpmap:96 VP8/90000', 'a=rtpmap:96 H264/90000'))).toThrow(/payload type 96 has two a=rtpmap lines/);
			expect(() => parseOffer(replaced('a=rtpmap:111 opus/48000/2', 'a=rtpmap:111 opus/48000/x'))).toThrow(/channel count/);
			expect(() => parseOffer(chromeLikeOffer.replace('m=video 9 UDP/TLS/RTP/SAVPF 96 97', 'm=video 9 UDP/TLS/RTP/SAVPF 96 x'))).toThrow(/payload types 0-127/);
			expect(() => parseOffer(chromeLikeOffer.replace('m=video 9 UDP/TLS/RTP/SAVPF 96 97', 'm=video x'))).toThrow(/m= line/);
			// Bundled sections share a transport: PT 111 cannot be Opus here and VP8 there ("duplicated codec.preferredPayloadType").
			expect(() => parseOffer(replaced('a=rtpmap:96 VP8/90000', 'a=rtpmap:111 VP8/90000'))).toThrow(/payload type 111 is audio\/opus\/48000\/2 in m= section 0 and video\/vp8\/90000\/1 in 1/);
		});
	});
});
