import { describe, expect, it } from 'vitest';
import { depacketizerFor } from '../../src/rtp/depacketize.js';
import { JitterBuffer, type EncodedFrame, type JitterBufferOptions } from '../../src/rtp/JitterBuffer.js';
import { parseRtp, type RtpPacket } from '../../src/rtp/packet.js';
import { packetizerFor, RtpSender } from '../../src/rtp/packetize.js';

/**
 * Synthetic VP8 streams through the real packetizer, sender and parser: a frame's first byte carries the VP8 P bit
 * (0 = keyframe), the rest is a pattern unique to the frame, so any mix-up shows in the bytes.
 */
function vp8Frame(index: number, key: boolean, size: number): Buffer {
	const frame = Buffer.alloc(size);
	frame[0] = key ? 0x10 : 0x11;
	for (let i = 1; i < size; i++) frame[i] = (index * 31 + i) & 0xff;
	return frame;
}

class Vp8Stream {
	readonly frames: Buffer[] = [];
	readonly #packetizer = packetizerFor('VP8', 106, { firstPictureId: 0 }); // 6-byte descriptors: 100-byte chunks
	readonly #sender: RtpSender;
	readonly #ssrc: number;
	#ts = 1000;

	constructor(firstSeq = 100, ssrc = 0x1234) {
		this.#ssrc = ssrc;
		this.#sender = new RtpSender({ ssrc, payloadType: 96, firstSequenceNumber: firstSeq });
	}

	/** Packets of the next frame; 100 bytes of frame per packet. */
	frame(key: boolean, size = 250): RtpPacket[] {
		const data = vp8Frame(this.frames.length, key, size);
		this.frames.push(data);
		const packets = this.#sender.packets(this.#packetizer.packetize(data, key), this.#ts).map((b) => parseRtp(b)!);
		this.#ts += 3000;
		for (const p of packets) expect(p.ssrc).toBe(this.#ssrc);
		return packets;
	}
}

const jb = (o: Partial<JitterBufferOptions> = {}): JitterBuffer => new JitterBuffer({ depacketizer: depacketizerFor('VP8'), ...o });

function pushAll(buffer: JitterBuffer, packets: RtpPacket[], now: number): void {
	for (const p of packets) buffer.push(p, now);
}

const seqs = (packets: RtpPacket[]): number[] => packets.map((p) => p.sequenceNumber);

describe('in order', () => {
	it('delivers each frame whole, in order, with its sequence range, keyframe flag and arrival time', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		const delta = s.frame(false, 100);
		buffer.push(key[0]!, 1);
		buffer.push(key[1]!, 2);
		expect(buffer.pop(2)).toEqual([]); // not complete yet
		buffer.push(key[2]!, 3);
		pushAll(buffer, delta, 4);
		const frames = buffer.pop(5);
		expect(frames).toHaveLength(2);
		expect(frames[0]).toMatchObject({ keyframe: true, firstSeq: 100, lastSeq: 102, receivedAt: 3, afterLoss: false, timestamp: 1000 });
		expect(frames[0]!.data.equals(s.frames[0]!)).toBe(true);
		expect(frames[1]).toMatchObject({ keyframe: false, firstSeq: 103, lastSeq: 103, receivedAt: 4, afterLoss: false, timestamp: 4000 });
		expect(frames[1]!.data.equals(s.frames[1]!)).toBe(true);
		expect(buffer.stats).toMatchObject({ packets: 4, framesDelivered: 2, framesDropped: 0, lost: 0, waitingForKeyframe: false, held: 0 });
		expect(buffer.nacks(100)).toEqual([]);
	});

	it('a frame whose marker packet has not come is held, not delivered early', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		pushAll(buffer, key.slice(0, 2), 0);
		expect(buffer.pop(1000)).toEqual([]);
		expect(buffer.nacks(1000)).toEqual([]); // nothing is known to be missing
		buffer.push(key[2]!, 1001);
		expect(buffer.pop(1001)).toHaveLength(1);
	});

	it('duplicates and packets of frames already delivered are ignored', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		pushAll(buffer, key, 0);
		buffer.push(key[1]!, 0);
		expect(buffer.pop(0)).toHaveLength(1);
		pushAll(buffer, key, 1);
		const delta = s.frame(false);
		pushAll(buffer, delta, 2);
		buffer.push(delta[0]!, 2);
		const frames = buffer.pop(2);
		expect(frames).toHaveLength(1);
		expect(frames[0]!.data.equals(s.frames[1]!)).toBe(true);
		expect(buffer.stats).toMatchObject({ duplicates: 2, tooOld: 3, framesDelivered: 2 });
	});
});

describe('reordering', () => {
	it('packets swapped within and across frames come out in decode order, without NACKs when the hole fills within nackDelayMs', () => {
		const s = new Vp8Stream();
		const buffer = jb({ nackDelayMs: 5 });
		const packets = [...s.frame(true), ...s.frame(false), ...s.frame(false)];
		// 100..108: deliver as 100 102 101 104 103 106 105 108 107
		const order = [0, 2, 1, 4, 3, 6, 5, 8, 7];
		const frames: EncodedFrame[] = [];
		for (const [i, index] of order.entries()) {
			buffer.push(packets[index]!, i);
			expect(buffer.nacks(i)).toEqual([]);
			frames.push(...buffer.pop(i));
		}
		expect(frames.map((f) => f.firstSeq)).toEqual([100, 103, 106]);
		frames.forEach((f, i) => expect(f.data.equals(s.frames[i]!), `frame ${i}`).toBe(true));
		expect(buffer.stats).toMatchObject({ nacksSent: 0, repaired: 0, lost: 0 });
	});

	it('a later complete frame waits for an earlier incomplete one', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		const delta = s.frame(false);
		pushAll(buffer, [key[0]!, key[2]!, ...delta], 0);
		expect(buffer.pop(10)).toEqual([]);
		buffer.push(key[1]!, 11);
		expect(buffer.pop(11).map((f) => f.firstSeq)).toEqual([100, 103]);
	});
});

describe('loss and NACK', () => {
	it('NACKs a missing packet after nackDelayMs, retries every nackIntervalMs up to maxNackRetries, then stops', () => {
		const s = new Vp8Stream();
		const buffer = jb({ nackDelayMs: 5, nackIntervalMs: 40, maxNackRetries: 3, maxWaitMs: 1000 });
		const key = s.frame(true);
		const delta = s.frame(false);
		pushAll(buffer, [key[0]!, key[2]!, delta[0]!, delta[2]!], 100);
		expect(buffer.nacks(104)).toEqual([]);
		expect(buffer.nacks(105)).toEqual([101, 104]);
		expect(buffer.nacks(106)).toEqual([]);
		expect(buffer.nacks(144)).toEqual([]);
		expect(buffer.nacks(145)).toEqual([101, 104]);
		expect(buffer.nacks(185)).toEqual([101, 104]);
		expect(buffer.nacks(225)).toEqual([]); // three NACKs each: done
		expect(buffer.nacks(500)).toEqual([]);
		expect(buffer.stats.nacksSent).toBe(6);
	});

	it('a NACKed packet that arrives repairs its frame: delivered whole, counted as repaired, NACKed no more', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		const delta = s.frame(false);
		pushAll(buffer, [key[0]!, key[2]!, ...delta], 0);
		expect(buffer.nacks(10)).toEqual([101]);
		expect(buffer.pop(10)).toEqual([]);
		buffer.push(key[1]!, 12);
		const frames = buffer.pop(12);
		expect(frames.map((f) => f.afterLoss)).toEqual([false, false]);
		expect(frames[0]!.data.equals(s.frames[0]!)).toBe(true);
		expect(frames[0]!.receivedAt).toBe(12);
		expect(buffer.nacks(100)).toEqual([]);
		expect(buffer.stats).toMatchObject({ repaired: 1, lost: 0, nacksSent: 1, waitingForKeyframe: false });
	});

	it('a lost last packet (marker) is noticed from the next frame and NACKed', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		const delta = s.frame(false);
		pushAll(buffer, [key[0]!, key[1]!, ...delta], 0);
		expect(buffer.nacks(10)).toEqual([102]);
	});

	it('gives a frame up after maxWaitMs: skipped, the next frame afterLoss, waitingForKeyframe until a keyframe', () => {
		const s = new Vp8Stream();
		const buffer = jb({ maxWaitMs: 200 });
		pushAll(buffer, s.frame(true), 0);
		expect(buffer.pop(0)).toHaveLength(1);
		const lost = s.frame(false); // 103..105, 104 never comes
		const next = s.frame(false); // 106..108
		pushAll(buffer, [lost[0]!, lost[2]!, ...next], 10);
		expect(buffer.pop(209)).toEqual([]);
		expect(buffer.stats.waitingForKeyframe).toBe(false);
		const frames = buffer.pop(210);
		expect(frames.map((f) => [f.firstSeq, f.afterLoss])).toEqual([[106, true]]);
		expect(frames[0]!.data.equals(s.frames[2]!)).toBe(true);
		expect(buffer.stats).toMatchObject({ lost: 1, framesDropped: 1, waitingForKeyframe: true });
		// A late arrival of the given-up packet changes nothing.
		buffer.push(lost[1]!, 211);
		expect(buffer.pop(211)).toEqual([]);
		// Delta frames keep coming (the caller decides), afterLoss only on the first after the gap.
		pushAll(buffer, s.frame(false), 220);
		expect(buffer.pop(220).map((f) => f.afterLoss)).toEqual([false]);
		expect(buffer.stats.waitingForKeyframe).toBe(true);
		pushAll(buffer, s.frame(true), 230);
		expect(buffer.pop(230).map((f) => [f.keyframe, f.afterLoss])).toEqual([[true, false]]);
		expect(buffer.stats.waitingForKeyframe).toBe(false);
	});

	it('a whole frame lost (gap between frames) is given up after maxWaitMs, its packets counted lost', () => {
		const s = new Vp8Stream();
		const buffer = jb({ maxWaitMs: 50 });
		pushAll(buffer, s.frame(true), 0);
		s.frame(false); // 103..105 never come
		const next = s.frame(false);
		pushAll(buffer, next, 0);
		expect(buffer.pop(0)).toHaveLength(1);
		expect(buffer.nacks(10)).toEqual([103, 104, 105]);
		expect(buffer.pop(50).map((f) => [f.firstSeq, f.afterLoss])).toEqual([[106, true]]);
		expect(buffer.stats).toMatchObject({ lost: 3, framesDropped: 0 });
	});

	it('a complete keyframe behind a hole is delivered at once, without waiting maxWaitMs for the hole', () => {
		const s = new Vp8Stream();
		const buffer = jb({ maxWaitMs: 200 });
		pushAll(buffer, s.frame(true), 0);
		buffer.pop(0);
		const broken = s.frame(false);
		pushAll(buffer, [broken[0]!, broken[2]!, ...s.frame(true)], 10);
		const frames = buffer.pop(11);
		expect(frames.map((f) => [f.firstSeq, f.keyframe, f.afterLoss])).toEqual([[106, true, true]]);
		expect(buffer.stats.waitingForKeyframe).toBe(false);
	});

	it('NACKs stop once the frame is given up', () => {
		const s = new Vp8Stream();
		const buffer = jb({ maxWaitMs: 100, nackIntervalMs: 40, maxNackRetries: 10 });
		const key = s.frame(true);
		pushAll(buffer, [key[0]!, key[2]!, ...s.frame(false)], 0);
		expect(buffer.nacks(5)).toEqual([101]);
		expect(buffer.nacks(45)).toEqual([101]);
		expect(buffer.nacks(85)).toEqual([101]);
		expect(buffer.nacks(125)).toEqual([]);
		expect(buffer.stats.nackPending).toBe(0);
	});
});

describe('the first keyframe is never lost', () => {
	it('keyframe first, its packets reordered (second packet arrives before the first)', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		pushAll(buffer, [key[1]!, key[0]!, key[2]!], 0);
		const frames = buffer.pop(0);
		expect(frames).toHaveLength(1);
		expect(frames[0]!.data.equals(s.frames[0]!)).toBe(true);
	});

	it('the first packet of the keyframe arrives last, after the rest and a delta frame', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		const delta = s.frame(false);
		pushAll(buffer, [key[1]!, key[2]!, ...delta], 0);
		expect(buffer.pop(5)).toEqual([]);
		buffer.push(key[0]!, 6);
		const frames = buffer.pop(6);
		expect(frames.map((f) => [f.firstSeq, f.keyframe])).toEqual([
			[100, true],
			[103, false],
		]);
	});

	it('after a few delta frames: those are dropped, decoding starts at the keyframe, no afterLoss', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		for (let i = 0; i < 3; i++) {
			pushAll(buffer, s.frame(false), i);
			expect(buffer.pop(i)).toEqual([]);
		}
		expect(buffer.stats.waitingForKeyframe).toBe(true);
		pushAll(buffer, s.frame(true), 3);
		pushAll(buffer, s.frame(false), 4);
		const frames = buffer.pop(4);
		expect(frames.map((f) => [f.keyframe, f.afterLoss])).toEqual([
			[true, false],
			[false, false],
		]);
		expect(frames[0]!.data.equals(s.frames[3]!)).toBe(true);
		expect(buffer.stats).toMatchObject({ framesDropped: 3, framesDelivered: 2, waitingForKeyframe: false });
	});

	it('the stream starts mid-frame, then the keyframe comes: the keyframe is delivered at once', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const delta = s.frame(false);
		pushAll(buffer, delta.slice(1), 0); // headless
		pushAll(buffer, s.frame(true), 1);
		expect(buffer.pop(1).map((f) => [f.firstSeq, f.keyframe])).toEqual([[103, true]]);
	});

	it('a delta frame with a hole before the keyframe does not hold the keyframe back', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const delta = s.frame(false);
		pushAll(buffer, [delta[0]!, delta[2]!, ...s.frame(true)], 0);
		expect(buffer.pop(0).map((f) => [f.firstSeq, f.keyframe, f.afterLoss])).toEqual([[103, true, false]]);
	});

	it('a keyframe with a lost packet is repaired by NACK, not skipped for a later delta', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		const key = s.frame(true);
		pushAll(buffer, [key[0]!, key[2]!, ...s.frame(false)], 0);
		expect(buffer.pop(5)).toEqual([]);
		expect(buffer.nacks(5)).toEqual([101]);
		buffer.push(key[1]!, 7);
		expect(buffer.pop(7).map((f) => f.keyframe)).toEqual([true, false]);
	});

	it('an unrepairable first keyframe is given up; the next keyframe starts decoding', () => {
		const s = new Vp8Stream();
		const buffer = jb({ maxWaitMs: 100 });
		const key = s.frame(true);
		pushAll(buffer, [key[0]!, key[2]!, ...s.frame(false)], 0);
		expect(buffer.pop(100)).toEqual([]); // keyframe given up, the delta after it dropped
		pushAll(buffer, s.frame(true), 150);
		expect(buffer.pop(150).map((f) => [f.firstSeq, f.keyframe, f.afterLoss])).toEqual([[106, true, false]]);
	});
});

describe('sequence numbers', () => {
	it('wrap at 65535: frames across the wrap delivered, a loss at the wrap NACKed as 65535 and 0', () => {
		const s = new Vp8Stream(65530);
		const buffer = jb();
		const frames: EncodedFrame[] = [];
		const all = [...s.frame(true), ...s.frame(false), ...s.frame(false), ...s.frame(false)];
		expect(seqs(all)).toEqual([65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4, 5]);
		for (const p of all) {
			if (p.sequenceNumber === 65535 || p.sequenceNumber === 0) continue;
			buffer.push(p, 0);
		}
		frames.push(...buffer.pop(10));
		expect(buffer.nacks(10)).toEqual([65535, 0]);
		buffer.push(all[6]!, 11);
		buffer.push(all[5]!, 11);
		frames.push(...buffer.pop(11));
		expect(frames.map((f) => [f.firstSeq, f.lastSeq])).toEqual([
			[65530, 65532],
			[65533, 65535],
			[0, 2],
			[3, 5],
		]);
		frames.forEach((f, i) => expect(f.data.equals(s.frames[i]!)).toBe(true));
		expect(buffer.stats).toMatchObject({ repaired: 2, lost: 0 });
	});

	it('runs across the wrap without drift (60k packets in order)', () => {
		const s = new Vp8Stream(60000);
		const buffer = jb();
		let delivered = 0;
		for (let i = 0; i < 30_000; i++) {
			pushAll(buffer, s.frame(i % 100 === 0, 180), i);
			delivered += buffer.pop(i).length;
			if (i % 1000 === 0) s.frames.length = 0; // keep the test's own memory small
		}
		expect(delivered).toBe(30_000);
		expect(buffer.stats).toMatchObject({ lost: 0, framesDropped: 0, held: 0 });
	});

	it('a jump of more than 1000 confirmed by a second packet is a new stream: reset, wait for its keyframe', () => {
		const s = new Vp8Stream(100);
		const buffer = jb();
		pushAll(buffer, s.frame(true), 0);
		expect(buffer.pop(0)).toHaveLength(1);
		const restarted = new Vp8Stream(30000);
		pushAll(buffer, restarted.frame(false), 1);
		pushAll(buffer, restarted.frame(true), 2);
		expect(buffer.pop(2).map((f) => [f.firstSeq, f.keyframe, f.afterLoss])).toEqual([[30003, true, false]]);
		expect(buffer.stats.restarts).toBe(1);
	});

	it('the new stream\'s first packet is kept when it confirms with the second one (its keyframe is not lost)', () => {
		const s = new Vp8Stream(100);
		const buffer = jb();
		pushAll(buffer, s.frame(true), 0);
		buffer.pop(0);
		const restarted = new Vp8Stream(5000);
		pushAll(buffer, restarted.frame(true), 1);
		expect(buffer.pop(1).map((f) => f.firstSeq)).toEqual([5000]);
	});

	it('one stray packet far away does not reset the stream', () => {
		const s = new Vp8Stream(100);
		const buffer = jb();
		pushAll(buffer, s.frame(true), 0);
		buffer.push({ ...s.frame(false)[0]!, sequenceNumber: 40000 }, 1);
		s.frames.pop();
		pushAll(buffer, s.frame(false), 2);
		// 103..105 skipped by the stray's frame; the next frame waits for them (they are missing, not reset away).
		expect(buffer.stats.restarts).toBe(0);
		expect(buffer.nacks(10)).toEqual([103, 104, 105]);
	});

	it('a new SSRC, confirmed by a second packet, is a new stream', () => {
		const buffer = jb();
		const a = new Vp8Stream(100, 1);
		pushAll(buffer, a.frame(true), 0);
		expect(buffer.pop(0)).toHaveLength(1);
		const b = new Vp8Stream(106, 2); // sequence numbers that would fit the old stream
		pushAll(buffer, b.frame(true), 1);
		expect(buffer.pop(1).map((f) => [f.firstSeq, f.keyframe])).toEqual([[106, true]]);
		expect(buffer.stats.restarts).toBe(1);
	});
});

describe('bounded memory', () => {
	it('without pop, never holds more than maxPackets; the oldest are given up, decoding resumes at a keyframe in the window', () => {
		const s = new Vp8Stream();
		const buffer = jb({ maxPackets: 64 });
		for (let i = 0; i < 200; i++) {
			pushAll(buffer, s.frame(i % 10 === 0), i);
			expect(buffer.stats.held).toBeLessThanOrEqual(64);
		}
		// 64 packets hold the last 21 1/3 frames (3 packets each): decoding starts at frame 180, the keyframe among them.
		const frames = buffer.pop(200);
		expect(frames).toHaveLength(20);
		frames.forEach((f, i) => expect(f.data.equals(s.frames[180 + i]!), `frame ${180 + i}`).toBe(true));
		expect(frames.filter((f) => f.keyframe).map((f) => f.firstSeq)).toEqual([100 + 180 * 3, 100 + 190 * 3]);
		expect(buffer.stats.held).toBe(0);
		expect(buffer.stats.lost).toBe(0); // given up, but they had all arrived
		expect(buffer.stats.framesDropped).toBe(180);
	});

	it('a flood of garbage (random sequence numbers, timestamps, SSRCs, payloads) stays bounded and never throws; a good stream after it plays', () => {
		const buffer = jb({ maxPackets: 500 });
		let seed = 7;
		const rnd = (n: number): number => {
			seed = (seed * 1103515245 + 12345) >>> 0;
			return seed % n;
		};
		for (let i = 0; i < 50_000; i++) {
			const payload = Buffer.alloc(rnd(40));
			for (let j = 0; j < payload.length; j++) payload[j] = rnd(256);
			buffer.push({ payloadType: 96, sequenceNumber: rnd(65536), timestamp: rnd(8), ssrc: rnd(3), marker: rnd(2) === 0, payload }, i);
			if (i % 7 === 0) buffer.pop(i);
			if (i % 5 === 0) buffer.nacks(i);
			const { held, nackPending } = buffer.stats;
			if (held > 500 || nackPending > 500) throw new Error(`unbounded at ${i}: held ${held}, nackPending ${nackPending}`);
		}
		buffer.reset();
		const s = new Vp8Stream(9, 77);
		pushAll(buffer, s.frame(true), 60_000);
		pushAll(buffer, s.frame(false), 60_000);
		const frames = buffer.pop(60_000);
		expect(frames.map((f) => f.keyframe)).toEqual([true, false]);
		expect(frames[0]!.data.equals(s.frames[0]!)).toBe(true);
	});
});

describe('reset', () => {
	it('forgets everything and waits for a keyframe; counters stay', () => {
		const s = new Vp8Stream();
		const buffer = jb();
		pushAll(buffer, s.frame(true), 0);
		const delta = s.frame(false);
		pushAll(buffer, [delta[0]!, delta[2]!], 0);
		expect(buffer.pop(0)).toHaveLength(1);
		buffer.reset();
		expect(buffer.nacks(100)).toEqual([]);
		expect(buffer.stats).toMatchObject({ waitingForKeyframe: true, held: 0, nackPending: 0, framesDelivered: 1 });
		pushAll(buffer, s.frame(false), 101);
		pushAll(buffer, s.frame(true), 102);
		expect(buffer.pop(102).map((f) => [f.firstSeq, f.keyframe])).toEqual([[109, true]]);
	});
});

describe('options', () => {
	it('bad options are refused with a TypeError naming the option', () => {
		expect(() => jb({ maxPackets: 3 })).toThrow(/maxPackets/);
		expect(() => jb({ maxWaitMs: -1 })).toThrow(/maxWaitMs/);
		expect(() => jb({ nackIntervalMs: Number.NaN })).toThrow(/nackIntervalMs/);
		expect(() => jb({ maxSeqJump: 0 })).toThrow(/maxSeqJump/);
	});
});
