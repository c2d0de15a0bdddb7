import { describe, expect, it } from 'vitest';
import { InvalidSdpError } from '../../src/errors.js';
import { buildAnswer } from '../../src/sdp/buildAnswer.js';
import { parseOffer } from '../../src/sdp/parseOffer.js';

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
		expect(() => parseOffer('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 AA\r\n')).toThrow(
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
});
