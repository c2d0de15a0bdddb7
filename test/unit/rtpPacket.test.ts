import { describe, expect, it } from 'vitest';
import { isRtcp, parseRtp, seqDiff, seqNewer, serializeRtp, type RtpPacket } from '../../src/rtp/packet.js';

const packet = (over: Partial<RtpPacket> = {}): RtpPacket => ({
	payloadType: 96,
	sequenceNumber: 1234,
	timestamp: 0xdeadbeef,
	ssrc: 0x12345678,
	marker: true,
	payload: Buffer.from([1, 2, 3, 4, 5]),
	...over,
});

describe('RTP serialise and parse', () => {
	it('round-trips every header field and the payload', () => {
		const p = packet();
		const buf = serializeRtp(p);
		expect(buf.length).toBe(12 + 5);
		expect(buf.subarray(0, 12).toString('hex')).toBe('80e004d2deadbeef12345678');
		expect(parseRtp(buf)).toEqual(p);
		const q = packet({ marker: false, payloadType: 111, sequenceNumber: 65535, timestamp: 0, ssrc: 0xffffffff });
		expect(parseRtp(serializeRtp(q))).toEqual(q);
	});

	it('masks out-of-range numbers instead of throwing (seq 65536 is 0, timestamp 2^32 is 0)', () => {
		const parsed = parseRtp(serializeRtp(packet({ sequenceNumber: 65536 + 7, timestamp: 2 ** 32 + 9 })));
		expect(parsed?.sequenceNumber).toBe(7);
		expect(parsed?.timestamp).toBe(9);
	});

	it('skips CSRCs, a header extension and padding', () => {
		const payload = Buffer.from('payload!');
		const buf = Buffer.concat([
			// V=2, P=1, X=1, CC=2; M=1, PT=100
			Buffer.from([0x80 | 0x20 | 0x10 | 2, 0x80 | 100, 0x00, 0x2a, 0, 0, 0, 9, 0, 0, 0, 1]),
			Buffer.from([0, 0, 0, 2, 0, 0, 0, 3]), // two CSRCs
			Buffer.from([0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]), // one-byte extension, 1 word
			payload,
			Buffer.from([0, 0, 3]), // 3 bytes of padding, the last says how many
		]);
		const p = parseRtp(buf);
		expect(p).toMatchObject({ payloadType: 100, marker: true, sequenceNumber: 42, timestamp: 9, ssrc: 1 });
		expect(p?.payload.equals(payload)).toBe(true);
	});

	it('returns undefined for malformed packets rather than throwing', () => {
		const good = serializeRtp(packet());
		expect(parseRtp(Buffer.alloc(0))).toBeUndefined();
		expect(parseRtp(good.subarray(0, 11))).toBeUndefined();
		const v1 = Buffer.from(good);
		v1[0] = 0x40;
		expect(parseRtp(v1)).toBeUndefined();
		// CSRC count past the end.
		const csrc = Buffer.from(good);
		csrc[0] = 0x8f;
		expect(parseRtp(csrc)).toBeUndefined();
		// Extension header cut short, and an extension length past the end.
		const ext = Buffer.concat([Buffer.from([0x90]), good.subarray(1, 12), Buffer.from([0xbe, 0xde])]);
		expect(parseRtp(ext)).toBeUndefined();
		const extLong = Buffer.concat([Buffer.from([0x90]), good.subarray(1, 12), Buffer.from([0xbe, 0xde, 0, 9])]);
		expect(parseRtp(extLong)).toBeUndefined();
		// Padding of 0 bytes, and padding longer than the payload.
		const pad0 = Buffer.concat([Buffer.from([0xa0]), good.subarray(1, 12), Buffer.from([1, 0])]);
		expect(parseRtp(pad0)).toBeUndefined();
		const padLong = Buffer.concat([Buffer.from([0xa0]), good.subarray(1, 12), Buffer.from([1, 200])]);
		expect(parseRtp(padLong)).toBeUndefined();
	});

	it('an empty payload is valid (mediasoup probation and keep-alive packets)', () => {
		const p = parseRtp(serializeRtp(packet({ payload: Buffer.alloc(0) })));
		expect(p?.payload.length).toBe(0);
	});

	it('does not parse RTCP as RTP', () => {
		const rr = Buffer.from([0x81, 201, 0, 7, ...Array<number>(28).fill(0)]);
		expect(isRtcp(rr)).toBe(true);
		expect(parseRtp(rr)).toBeUndefined();
	});
});

describe('RTP/RTCP demultiplexing (RFC 5761)', () => {
	it('RTCP packet types 192-223 are RTCP, RTP payload types are not', () => {
		for (let pt = 192; pt <= 223; pt++) expect(isRtcp(Buffer.from([0x80, pt])), String(pt)).toBe(true);
		for (const pt of [0, 8, 63, 96, 100, 111, 127]) {
			expect(isRtcp(Buffer.from([0x80, pt])), String(pt)).toBe(false);
			expect(isRtcp(Buffer.from([0x80, 0x80 | pt])), `${pt} with marker`).toBe(false);
		}
		expect(isRtcp(Buffer.from([0x80]))).toBe(false);
	});
});

describe('16-bit sequence arithmetic', () => {
	it('seqDiff is the signed distance across the wrap', () => {
		expect(seqDiff(5, 3)).toBe(2);
		expect(seqDiff(3, 5)).toBe(-2);
		expect(seqDiff(0, 65535)).toBe(1);
		expect(seqDiff(65535, 0)).toBe(-1);
		expect(seqDiff(10, 65530)).toBe(16);
		expect(seqDiff(100, 100)).toBe(0);
		expect(seqDiff(32767, 0)).toBe(32767);
		expect(seqDiff(32768, 0)).toBe(-32768);
	});

	it('seqNewer follows RFC 3550 wraparound', () => {
		expect(seqNewer(1, 0)).toBe(true);
		expect(seqNewer(0, 1)).toBe(false);
		expect(seqNewer(0, 65535)).toBe(true);
		expect(seqNewer(65535, 0)).toBe(false);
		expect(seqNewer(7, 7)).toBe(false);
		expect(seqNewer(32767, 0)).toBe(true);
		expect(seqNewer(32768, 0)).toBe(false);
	});
});
