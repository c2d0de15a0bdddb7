import { describe, expect, it } from 'vitest';
import {
	buildFir,
	buildNack,
	buildPli,
	buildReceiverReport,
	buildSenderReport,
	msToNtp,
	ntpMiddleOf,
	ntpToMs,
	parseRtcp,
	type RtcpReportBlock,
} from '../../src/rtp/rtcp.js';
import { isRtcp } from '../../src/rtp/packet.js';

describe('building RTCP feedback', () => {
	it('PLI: PSFB FMT 1, 3 words, sender and media SSRC (RFC 4585 §6.3.1)', () => {
		const buf = buildPli(0x11111111, 0x22222222);
		expect(buf.toString('hex')).toBe('81ce0002' + '11111111' + '22222222');
		expect(isRtcp(buf)).toBe(true);
		expect(parseRtcp(buf)).toEqual([{ type: 'pli', senderSsrc: 0x11111111, mediaSsrc: 0x22222222 }]);
	});

	it('FIR: PSFB FMT 4, media SSRC 0 in the header, target SSRC and seq in the FCI (RFC 5104 §4.3.1)', () => {
		const buf = buildFir(0xaabbccdd, 0x01020304, 257);
		expect(buf.toString('hex')).toBe('84ce0004' + 'aabbccdd' + '00000000' + '01020304' + '01000000');
		expect(parseRtcp(buf)).toEqual([{ type: 'fir', senderSsrc: 0xaabbccdd, mediaSsrc: 0x01020304, seq: 1 }]);
	});

	it('NACK: PID and BLP bit by bit (RFC 4585 §6.2.1: bit i of BLP is PID+i+1, LSB first)', () => {
		// 100 is the PID; 101 -> bit 0, 103 -> bit 2, 116 -> bit 15 (PID+16, the last one a BLP holds); 117 needs a new PID.
		const buf = buildNack(1, 2, [117, 103, 100, 116, 101, 101]);
		expect(buf[0]).toBe(0x81); // V=2, P=0, FMT=1
		expect(buf[1]).toBe(205); // RTPFB
		expect(buf.readUInt16BE(2)).toBe(4); // 5 words - 1
		expect(buf.readUInt32BE(4)).toBe(1);
		expect(buf.readUInt32BE(8)).toBe(2);
		expect(buf.readUInt16BE(12)).toBe(100);
		expect(buf.readUInt16BE(14)).toBe(0b1000_0000_0000_0101);
		expect(buf.readUInt16BE(16)).toBe(117);
		expect(buf.readUInt16BE(18)).toBe(0);
		expect(buf.length).toBe(20);
		expect(parseRtcp(buf)).toEqual([{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, seqs: [100, 101, 103, 116, 117] }]);
	});

	it('NACK across the 16-bit wrap keeps one PID for 65534..1', () => {
		const buf = buildNack(1, 2, [1, 65534, 0, 65535]);
		expect(buf.readUInt16BE(12)).toBe(65534);
		expect(buf.readUInt16BE(14)).toBe(0b0111); // 65535, 0, 1
		expect(buf.length).toBe(16);
		const [msg] = parseRtcp(buf);
		expect(msg).toEqual({ type: 'nack', senderSsrc: 1, mediaSsrc: 2, seqs: [65534, 65535, 0, 1] });
	});

	it('NACK of a long run packs 17 seqs per FCI entry', () => {
		const seqs = Array.from({ length: 40 }, (_, i) => 1000 + i);
		const buf = buildNack(1, 2, seqs);
		expect(buf.length).toBe(12 + 3 * 4);
		expect([buf.readUInt16BE(12), buf.readUInt16BE(14)]).toEqual([1000, 0xffff]);
		expect([buf.readUInt16BE(16), buf.readUInt16BE(18)]).toEqual([1017, 0xffff]);
		expect([buf.readUInt16BE(20), buf.readUInt16BE(22)]).toEqual([1034, 0b11111]);
		const [msg] = parseRtcp(buf);
		expect(msg?.type === 'nack' && msg.seqs).toEqual(seqs);
	});

	it('NACK without sequence numbers is refused (it would be an invalid packet)', () => {
		expect(() => buildNack(1, 2, [])).toThrow(TypeError);
	});
});

describe('sender and receiver reports', () => {
	it('SR round-trips, its NTP time within a microsecond', () => {
		const now = 1_764_000_000_123.456;
		const buf = buildSenderReport(0xcafebabe, now, 0xfffffff0, 1234, 567890);
		expect(buf.length).toBe(28);
		expect(buf.subarray(0, 4).toString('hex')).toBe('80c80006');
		const [sr] = parseRtcp(buf);
		if (sr?.type !== 'sr') throw new Error(`expected an SR, got ${JSON.stringify(sr)}`);
		expect(sr.ssrc).toBe(0xcafebabe);
		expect(Math.abs(sr.ntpMs - now)).toBeLessThan(0.001);
		expect(sr.ntpMiddle).toBe(ntpMiddleOf(now));
		expect(sr).toMatchObject({ rtpTimestamp: 0xfffffff0, packetCount: 1234, octetCount: 567890, reports: [] });
	});

	it('NTP conversion: the Unix epoch is 2208988800 s after 1900', () => {
		expect(msToNtp(0)).toEqual({ seconds: 2_208_988_800, fraction: 0 });
		expect(msToNtp(1500)).toEqual({ seconds: 2_208_988_801, fraction: 0x80000000 });
		expect(ntpToMs(2_208_988_801, 0x40000000)).toBe(1250);
		expect(ntpMiddleOf(1500)).toBe((((2_208_988_801 & 0xffff) << 16) | 0x8000) >>> 0);
	});

	it('RR with one report block round-trips, negative cumulative loss included', () => {
		const block: RtcpReportBlock = {
			ssrc: 0x01020304,
			fractionLost: 25,
			cumulativeLost: -3,
			highestSeq: 0x0001fffe,
			jitter: 42,
			lsr: 0x12345678,
			dlsr: 65536,
		};
		const buf = buildReceiverReport(0x99, block);
		expect(buf.length).toBe(32);
		expect(buf.subarray(0, 4).toString('hex')).toBe('81c90007');
		expect(parseRtcp(buf)).toEqual([{ type: 'rr', ssrc: 0x99, reports: [block] }]);
		expect(parseRtcp(buildReceiverReport(0x99))).toEqual([{ type: 'rr', ssrc: 0x99, reports: [] }]);
	});
});

describe('parsing RTCP from the wire', () => {
	it('a compound SR + SDES (as libwebrtc and mediasoup send) gives the SR and an "other" for the SDES', () => {
		const sr = Buffer.from(
			// V=2 RC=1 PT=200 len=12; SSRC; NTP; RTP ts; packets; octets; one report block
			'81c8000c' +
				'0000abcd' +
				'eb8a5f3a80000000' +
				'00015f90' +
				'00000064' +
				'00002710' +
				'00001234' +
				'05000007' +
				'00010010' +
				'00000020' +
				'00000000' +
				'00000000',
			'hex',
		);
		// SDES: one chunk, CNAME "abcd", END, padded to a word boundary.
		const sdes = Buffer.from('81ca0003' + '0000abcd' + '0104' + Buffer.from('abcd').toString('hex') + '0000', 'hex');
		const msgs = parseRtcp(Buffer.concat([sr, sdes]));
		expect(msgs).toHaveLength(2);
		expect(msgs[0]).toMatchObject({
			type: 'sr',
			ssrc: 0xabcd,
			rtpTimestamp: 90000,
			packetCount: 100,
			octetCount: 10000,
			ntpMiddle: 0x5f3a8000,
			reports: [{ ssrc: 0x1234, fractionLost: 5, cumulativeLost: 7, highestSeq: 0x10010, jitter: 32, lsr: 0, dlsr: 0 }],
		});
		expect(msgs[0]?.type === 'sr' && msgs[0].ntpMs).toBeCloseTo(ntpToMs(0xeb8a5f3a, 0x80000000), 6);
		expect(msgs[1]).toEqual({ type: 'other', packetType: 202, fmt: 1, ssrc: 0xabcd });
	});

	it('a compound RR + PLI + NACK + FIR (mediasoup towards a plain receiver) gives each message', () => {
		const buf = Buffer.concat([buildReceiverReport(7), buildPli(7, 8), buildNack(7, 8, [5, 6]), buildFir(7, 8, 3)]);
		expect(parseRtcp(buf).map((m) => m.type)).toEqual(['rr', 'pli', 'nack', 'fir']);
	});

	it('FIR with two FCI entries yields two messages', () => {
		const buf = Buffer.from('84ce0006' + '00000001' + '00000000' + '0000000a' + '05000000' + '0000000b' + '06000000', 'hex');
		expect(parseRtcp(buf)).toEqual([
			{ type: 'fir', senderSsrc: 1, mediaSsrc: 10, seq: 5 },
			{ type: 'fir', senderSsrc: 1, mediaSsrc: 11, seq: 6 },
		]);
	});

	it('junk never throws and returns what parsed before it', () => {
		expect(parseRtcp(Buffer.alloc(0))).toEqual([]);
		expect(parseRtcp(Buffer.from([0x80]))).toEqual([]);
		expect(parseRtcp(Buffer.from('hello world, this is not rtcp'))).toEqual([]);
		const pli = buildPli(1, 2);
		// Valid PLI followed by a header claiming more bytes than there are.
		expect(parseRtcp(Buffer.concat([pli, Buffer.from('81c9ffff00000001', 'hex')]))).toHaveLength(1);
		// Valid PLI followed by version 1.
		expect(parseRtcp(Buffer.concat([pli, Buffer.from('41c9000100000001', 'hex')]))).toHaveLength(1);
		// Truncated SR body (length says 1 word): an "other", no throw.
		expect(parseRtcp(Buffer.from('80c8000100000001', 'hex'))).toEqual([{ type: 'other', packetType: 200, fmt: 0, ssrc: 1 }]);
		// A NACK shorter than its fixed part.
		expect(parseRtcp(Buffer.from('81cd000100000001', 'hex'))).toEqual([{ type: 'other', packetType: 205, fmt: 1, ssrc: 1 }]);
		// Zero padding count is malformed.
		expect(parseRtcp(Buffer.from('a1ce000200000001' + '00000000', 'hex'))).toEqual([]);
		// Random bytes: whatever comes back, no throw.
		let seed = 12345;
		const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
		for (let i = 0; i < 2000; i++) {
			const junk = Buffer.from(Array.from({ length: 1 + (i % 64) }, rnd));
			junk[0] = (junk[0]! & 0x3f) | 0x80;
			junk[1] = 192 + (junk[1]! % 32);
			expect(() => parseRtcp(junk)).not.toThrow();
		}
	});
});
