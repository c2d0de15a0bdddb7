import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Amf0Error, decodeAmf0, encodeAmf0 } from '../../src/ingest/live/amf0.js';
import { FlvMediaParser, FlvStreamReader, UnsupportedMediaError } from '../../src/ingest/live/flv.js';
import { serverHandshake } from '../../src/ingest/rtmp/handshake.js';
import { rtmpTarget } from '../../src/ingest/rtmp/streamName.js';
import { redactStreamId, srtTarget } from '../../src/ingest/srt/streamId.js';

const SPS = Buffer.from([0x67, 0x64, 0x00, 0x1f, 0xac]);
const PPS = Buffer.from([0x68, 0xee, 0x3c, 0x80]);
const IDR = Buffer.from([0x65, 0x88, 0x84, 0x00]);
const P_SLICE = Buffer.from([0x41, 0x9a, 0x02]);

function avcConfig(): Buffer {
	return Buffer.concat([Buffer.from([1, 0x64, 0, 0x1f, 0xff, 0xe1]), u16(SPS.length), SPS, Buffer.from([1]), u16(PPS.length), PPS]);
}
function u16(n: number): Buffer {
	const b = Buffer.alloc(2);
	b.writeUInt16BE(n);
	return b;
}
function lengthPrefixed(...nals: Buffer[]): Buffer {
	return Buffer.concat(nals.flatMap((n) => [Buffer.from([0, 0, (n.length >> 8) & 0xff, n.length & 0xff]), n]));
}
function videoTag(frameType: number, packetType: number, cts: number, payload: Buffer): Buffer {
	const header = Buffer.from([(frameType << 4) | 7, packetType, 0, 0, 0]);
	header.writeIntBE(cts, 2, 3);
	return Buffer.concat([header, payload]);
}
const START = Buffer.from([0, 0, 0, 1]);

describe('AMF0', () => {
	it('reads what it writes, and ECMA arrays and strict arrays as publishers send them', () => {
		const encoded = encodeAmf0('connect', 1, { app: 'live', tcUrl: 'rtmp://h/live', fpad: false }, null);
		expect(decodeAmf0(encoded)).toEqual(['connect', 1, { app: 'live', tcUrl: 'rtmp://h/live', fpad: false }, null]);
		const ecma = Buffer.concat([Buffer.from([0x08, 0, 0, 0, 1]), u16(5), Buffer.from('width'), encodeAmf0(640), Buffer.from([0, 0, 9])]);
		expect({ ...(decodeAmf0(ecma)[0] as object) }).toEqual({ width: 640 });
		expect(decodeAmf0(Buffer.concat([Buffer.from([0x0a, 0, 0, 0, 2]), encodeAmf0(1, 'a')]))).toEqual([[1, 'a']]);
	});

	it('data cut short, unknown types, and nesting 100 deep are refused, never read past the end', () => {
		expect(() => decodeAmf0(Buffer.from([0x02, 0x00, 0x10, 0x41]))).toThrow(Amf0Error);
		expect(() => decodeAmf0(Buffer.from([0x11]))).toThrow(/AMF0 type 0x11/);
		expect(() => decodeAmf0(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff]))).toThrow(Amf0Error);
		const deep = Buffer.concat([...Array.from({ length: 100 }, () => Buffer.concat([Buffer.from([0x03]), u16(1), Buffer.from('a')]))]);
		expect(() => decodeAmf0(deep)).toThrow(/too deep|cut short/);
	});
});

describe('FLV tags to H264 access units and AAC frames', () => {
	it('keyframes get SPS and PPS in front, Annex B; the composition offset is signed', () => {
		const parser = new FlvMediaParser();
		expect(parser.parse(9, 0, videoTag(1, 0, 0, avcConfig()))).toBeUndefined();
		const key = parser.parse(9, 1000, videoTag(1, 1, 66, lengthPrefixed(IDR)));
		expect(key).toMatchObject({ kind: 'video', keyframe: true, dtsMs: 1000, ptsMs: 1066 });
		expect(key!.data).toEqual(Buffer.concat([START, SPS, START, PPS, START, IDR]));
		const delta = parser.parse(9, 1033, videoTag(2, 1, -33, lengthPrefixed(P_SLICE)));
		expect(delta).toMatchObject({ keyframe: false, ptsMs: 1000 });
		expect(delta!.data).toEqual(Buffer.concat([START, P_SLICE]));
		expect(parser.reorders).toBe(true);
	});

	it("FFmpeg's remux of MPEG-TS: an empty sequence header, parameter sets in-band, kept for later keyframes", () => {
		const parser = new FlvMediaParser();
		parser.parse(9, 0, videoTag(1, 0, 0, Buffer.alloc(0)));
		expect(parser.parse(9, 0, videoTag(2, 1, 0, lengthPrefixed(P_SLICE)))).toMatchObject({ keyframe: false });
		const first = parser.parse(9, 40, videoTag(1, 1, 0, lengthPrefixed(SPS, PPS, IDR)));
		expect(first!.data).toEqual(Buffer.concat([START, SPS, START, PPS, START, IDR]));
		const later = parser.parse(9, 80, videoTag(1, 1, 0, lengthPrefixed(IDR)));
		expect(later!.data).toEqual(Buffer.concat([START, SPS, START, PPS, START, IDR]));
		// An empty AAC header first, then the real AudioSpecificConfig.
		parser.parse(8, 0, Buffer.from([0xaf, 0x00]));
		expect(parser.parse(8, 0, Buffer.from([0xaf, 0x01, 0x21]))).toBeUndefined();
		parser.parse(8, 0, Buffer.from([0xaf, 0x00, 0x12, 0x10]));
		expect(parser.parse(8, 23, Buffer.from([0xaf, 0x01, 0x21, 0x22]))).toEqual({ kind: 'audio', ptsMs: 23, data: Buffer.from([0x21, 0x22]), config: Buffer.from([0x12, 0x10]) });
	});

	it('other codecs are refused by name, with what to send', () => {
		const parser = new FlvMediaParser();
		expect(() => parser.parse(9, 0, Buffer.from([0x12, 0, 0]))).toThrow(new UnsupportedMediaError('video codec Sorenson H.263 is not supported; send H264'));
		expect(() => parser.parse(9, 0, Buffer.from([0x90, 0x68, 0x76, 0x63, 0x31]))).toThrow(/"hvc1" \(enhanced RTMP\) is not supported; send H264/);
		expect(() => parser.parse(8, 0, Buffer.from([0x2f, 0xff]))).toThrow(/audio codec MP3 is not supported; send AAC/);
		expect(() => parser.parse(9, 0, videoTag(1, 0, 0, Buffer.from([1, 2, 3, 4, 5, 6, 7])))).toThrow(/sequence header .* is malformed/);
		parser.parse(9, 0, videoTag(1, 0, 0, avcConfig()));
		expect(() => parser.parse(9, 0, videoTag(1, 1, 0, Buffer.from([0, 0, 1, 0, 0x65])))).toThrow(/cut short/);
	});

	it('an FLV byte stream in pieces gives whole tags; not FLV is refused', () => {
		const tags: Array<[number, number, number]> = [];
		const reader = new FlvStreamReader((type, ts, body) => tags.push([type, ts, body.length]));
		const tag = (type: number, ts: number, body: Buffer) => {
			const h = Buffer.alloc(11);
			h[0] = type;
			h.writeUIntBE(body.length, 1, 3);
			h.writeUIntBE(ts & 0xffffff, 4, 3);
			h[7] = ts >>> 24;
			const prev = Buffer.alloc(4);
			prev.writeUInt32BE(11 + body.length);
			return Buffer.concat([h, body, prev]);
		};
		const stream = Buffer.concat([Buffer.from('FLV\x01\x05\x00\x00\x00\x09', 'latin1'), Buffer.alloc(4), tag(9, 0, Buffer.alloc(100)), tag(8, 0x01020304, Buffer.alloc(7))]);
		for (let at = 0; at < stream.length; at += 13) reader.push(stream.subarray(at, at + 13));
		expect(tags).toEqual([[9, 0, 100], [8, 0x01020304, 7]]);
		expect(() => new FlvStreamReader(() => undefined).push(Buffer.from('GIF89a-not-flv'))).toThrow(/not an FLV stream/);
	});
});

describe('which broadcast a publish names', () => {
	it('RTMP: app live with the key in the query, or app live/<broadcast> with the key as stream name', () => {
		expect(rtmpTarget('live', 'keynote', new URLSearchParams('key=K1'))).toEqual({ broadcastId: 'keynote', key: 'K1' });
		expect(rtmpTarget('live', 'keynote', new URLSearchParams('token=K2'))).toEqual({ broadcastId: 'keynote', key: 'K2' });
		expect(rtmpTarget('live/keynote', 'K3', new URLSearchParams())).toEqual({ broadcastId: 'keynote', key: 'K3' });
		expect(rtmpTarget('live', 'keynote', new URLSearchParams())).toEqual({ broadcastId: 'keynote', key: undefined });
		expect(rtmpTarget('vod', 'keynote', new URLSearchParams())).toMatchObject({ error: expect.stringMatching(/"vod" is not served/) });
	});

	it('SRT: access-control syntax, publish:<id>:<key>, percent-encoded; other modes and an empty streamid refused', () => {
		expect(srtTarget('#!::r=keynote,m=publish,s=K1')).toEqual({ broadcastId: 'keynote', key: 'K1' });
		expect(srtTarget('#!::m=publish,r=keynote,u=alice,s=K:with:colons')).toEqual({ broadcastId: 'keynote', key: 'K:with:colons' });
		expect(srtTarget('publish:keynote:K2')).toEqual({ broadcastId: 'keynote', key: 'K2' });
		expect(srtTarget('publish%3Akeynote%3AK3')).toEqual({ broadcastId: 'keynote', key: 'K3' });
		expect(srtTarget('keynote')).toEqual({ broadcastId: 'keynote', key: undefined });
		expect(srtTarget('#!::r=keynote,m=request')).toMatchObject({ error: expect.stringMatching(/mode "request" is not served/) });
		expect(srtTarget('read:keynote')).toMatchObject({ error: expect.stringMatching(/publishers only/) });
		expect(srtTarget('')).toMatchObject({ error: expect.stringMatching(/no streamid/) });
	});

	it('SRT streamids in log lines have their key redacted', () => {
		expect(redactStreamId('#!::r=keynote,m=publish,s=K1')).toBe('#!::r=keynote,m=publish,s=[redacted]');
		expect(redactStreamId('#!::s=K1,r=keynote')).toBe('#!::s=[redacted],r=keynote');
		expect(redactStreamId('publish:keynote:K:2')).toBe('publish:keynote:[redacted]');
		expect(redactStreamId('publish%3Akeynote%3AK3')).toBe('publish:keynote:[redacted]');
		expect(redactStreamId('keynote')).toBe('keynote');
	});
});

describe('RTMP handshake', () => {
	// What a client checks, written from its side (librtmp's handshake.h, FFmpeg's rtmpproto.c).
	const FMS = Buffer.from('Genuine Adobe Flash Media Server 001', 'latin1');
	const FP = Buffer.from('Genuine Adobe Flash Player 001', 'latin1');
	const CRUD = Buffer.from('f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae', 'hex');
	const hmac = (data: Buffer, key: Buffer) => createHmac('sha256', key).update(data).digest();
	const offset = (sig: Buffer, scheme: 0 | 1) => {
		const base = scheme === 0 ? 8 : 772;
		return ((sig[base]! + sig[base + 1]! + sig[base + 2]! + sig[base + 3]!) % 728) + (scheme === 0 ? 12 : 776);
	};
	const without = (sig: Buffer, at: number) => Buffer.concat([sig.subarray(0, at), sig.subarray(at + 32)]);

	it('a plain C1 (version 0) gets S2 = C1', () => {
		const c1 = Buffer.concat([Buffer.alloc(8), randomBytes(1528)]);
		const out = serverHandshake(c1);
		expect(out.length).toBe(1 + 1536 * 2);
		expect(out[0]).toBe(3);
		expect(out.subarray(1 + 1536)).toEqual(c1);
	});

	for (const scheme of [0, 1] as const) {
		it(`a signed C1 (digest scheme ${scheme}, as FFmpeg and OBS send) gets an S1 and S2 the client can verify`, () => {
			const c1 = Buffer.concat([Buffer.from([0, 0, 0, 0, 9, 0, 124, 2]), randomBytes(1528)]);
			const at = offset(c1, scheme);
			hmac(without(c1, at), FP).copy(c1, at);
			const out = serverHandshake(c1);
			const s1 = out.subarray(1, 1537);
			const s2 = out.subarray(1537);
			const s1At = offset(s1, scheme);
			expect(s1.subarray(s1At, s1At + 32)).toEqual(hmac(without(s1, s1At), FMS));
			const key = hmac(c1.subarray(at, at + 32), Buffer.concat([FMS, CRUD]));
			expect(s2.subarray(1504)).toEqual(hmac(s2.subarray(0, 1504), key));
		});
	}
});
