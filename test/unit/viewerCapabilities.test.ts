/**
 * What a WHEP viewer is told when its offer cannot receive what the broadcast
 * sends. Pure logic: the published tracks are fakes (only kind and codec are read).
 */
import { describe, expect, it } from 'vitest';
import { UnsupportedCodecError } from '../../src/errors.js';
import type { PublishedTrack } from '../../src/fanout/FanOut.js';
import { parseOffer } from '../../src/sdp/parseOffer.js';
import { viewerExtensionIds, viewerPayloadTypes } from '../../src/viewers/capabilities.js';

const FINGERPRINT = 'AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99';

function videoOffer(rtpLines: string[], payloadTypes: number[]): string {
	return [
		'v=0',
		'o=- 1 2 IN IP4 127.0.0.1',
		's=-',
		't=0 0',
		`a=fingerprint:sha-256 ${FINGERPRINT}`,
		'a=setup:actpass',
		`m=video 9 UDP/TLS/RTP/SAVPF ${payloadTypes.join(' ')}`,
		'c=IN IP4 0.0.0.0',
		'a=mid:0',
		'a=recvonly',
		'a=rtcp-mux',
		...rtpLines,
		'',
	].join('\r\n');
}

const track = (codec: PublishedTrack['codec']): PublishedTrack => ({ kind: codec === 'opus' ? 'audio' : 'video', codec }) as PublishedTrack;

function refusal(offer: string, tracks: PublishedTrack[]): Error {
	try {
		viewerPayloadTypes(parseOffer(offer).media, tracks);
	} catch (error) {
		return error as Error;
	}
	throw new Error('the offer was taken');
}

describe('a viewer offering a codec the broadcast sends, but not as it sends it (issue 8 §7)', () => {
	it('H264 in a profile the relay does not send: a 422 that names the profile and says what to offer', () => {
		// Chromium on some hardware, or a client configured for High only, offers 640c1f (Constrained High).
		const offer = videoOffer(['a=rtpmap:102 H264/90000', 'a=fmtp:102 profile-level-id=640c1f;packetization-mode=1;level-asymmetry-allowed=1'], [102]);
		const error = refusal(offer, [track('H264')]);
		expect(error).toBeInstanceOf(UnsupportedCodecError);
		// It was "the viewer offers H264 for video, but this broadcast sends H264; offer H264".
		expect(error.message).toMatch(/640c1f/);
		expect(error.message).toMatch(/Constrained High/);
		expect(error.message).toMatch(/sends H264 Constrained Baseline/);
		expect(error.message).toMatch(/profile-level-id=42e01f/);
		expect(error.message).not.toMatch(/sends H264;/);
	});

	it('H264 without packetization-mode 1: the 422 says so', () => {
		const offer = videoOffer(['a=rtpmap:97 H264/90000', 'a=fmtp:97 profile-level-id=42e01f;packetization-mode=0'], [97]);
		const error = refusal(offer, [track('H264')]);
		expect(error.message).toMatch(/packetization-mode=1/);
		expect(error.message).toMatch(/sends H264 Constrained Baseline/);
	});

	it('another codec only: the 422 names what was offered and what to offer', () => {
		const offer = videoOffer(['a=rtpmap:96 VP8/90000'], [96]);
		const error = refusal(offer, [track('H264')]);
		expect(error.message).toMatch(/offers VP8 for video/);
		expect(error.message).toMatch(/offer H264/);
	});

	it('the profile the relay sends, among others, is taken with its payload type', () => {
		const offer = videoOffer(
			[
				'a=rtpmap:100 H264/90000',
				'a=fmtp:100 profile-level-id=640c1f;packetization-mode=1',
				'a=rtpmap:102 H264/90000',
				'a=fmtp:102 profile-level-id=42e01f;packetization-mode=1',
			],
			[100, 102],
		);
		expect(viewerPayloadTypes(parseOffer(offer).media, [track('H264')])).toEqual({ H264: 102 });
	});
});

describe('the header extension ids a viewer picked', () => {
	it("takes the viewer's ids for the extensions the relay sends, by URI (Chromium's: transport-cc 4, abs-send-time 2, mid 9)", () => {
		const offer = videoOffer(
			[
				'a=rtpmap:96 VP8/90000',
				'a=extmap:1 urn:ietf:params:rtp-hdrext:toffset',
				'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
				'a=extmap:3 urn:3gpp:video-orientation',
				'a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
				'a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay',
				'a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid',
				'a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
			],
			[96],
		);
		expect(viewerExtensionIds(parseOffer(offer).media, [track('VP8')])).toEqual({
			'urn:ietf:params:rtp-hdrext:toffset': 1,
			'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time': 2,
			'urn:3gpp:video-orientation': 3,
			'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01': 4,
			'urn:ietf:params:rtp-hdrext:sdes:mid': 9,
		});
	});

	it('leaves out two-byte ids (above 14) and extensions of sections the viewer does not receive', () => {
		const offer = videoOffer(['a=rtpmap:96 VP8/90000', 'a=extmap:20 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01', 'a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid'], [96]);
		expect(viewerExtensionIds(parseOffer(offer).media, [track('VP8')])).toEqual({ 'urn:ietf:params:rtp-hdrext:sdes:mid': 9 });
		expect(viewerExtensionIds(parseOffer(offer).media, [track('opus')])).toEqual({});
	});
});
