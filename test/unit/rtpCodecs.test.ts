import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveFfmpeg } from '../../src/ffmpeg/binary.js';
import { depacketizerFor, vp8DescriptorLength, vp8PictureId } from '../../src/rtp/depacketize.js';
import { JitterBuffer, type EncodedFrame } from '../../src/rtp/JitterBuffer.js';
import { parseRtp, serializeRtp } from '../../src/rtp/packet.js';
import { H264Packetizer, packetizerFor, RtpSender, splitAnnexB, Vp8Packetizer } from '../../src/rtp/packetize.js';

const vp8 = depacketizerFor('VP8');
const h264 = depacketizerFor('H264');
const opus = depacketizerFor('opus');

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pattern = (size: number, seed: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (seed * 7 + i * 13) & 0xff));

describe('VP8 payload descriptor (RFC 7741 §4.2)', () => {
	// The byte after each descriptor is the VP8 payload header: 0x10 (P=0) is a keyframe, 0x11 (P=1) is not.
	const cases: { name: string; descriptor: string; length: number; pictureId: number | undefined }[] = [
		{ name: 'minimal (X=0)', descriptor: '10', length: 1, pictureId: undefined },
		{ name: 'X, no fields', descriptor: '90 00', length: 2, pictureId: undefined },
		{ name: '7-bit picture ID', descriptor: '90 80 55', length: 3, pictureId: 0x55 },
		{ name: '15-bit picture ID', descriptor: '90 80 ab cd', length: 4, pictureId: 0x2bcd },
		{ name: 'TL0PICIDX (L)', descriptor: '90 40 07', length: 3, pictureId: undefined },
		{ name: 'TID (T)', descriptor: '90 20 40', length: 3, pictureId: undefined },
		{ name: 'KEYIDX (K)', descriptor: '90 10 05', length: 3, pictureId: undefined },
		{ name: 'T and K share one byte', descriptor: '90 30 45', length: 3, pictureId: undefined },
		{ name: 'I (15-bit), L, T, K', descriptor: '90 f0 81 02 07 45', length: 6, pictureId: 0x102 },
		{ name: 'I (7-bit), L, T', descriptor: '90 e0 02 07 40', length: 5, pictureId: 2 },
	];
	for (const c of cases) {
		it(`${c.name}: descriptor length, picture ID, frame start, keyframe`, () => {
			const key = Buffer.concat([hex(c.descriptor), hex('10 02 00 9d 01 2a')]);
			const delta = Buffer.concat([hex(c.descriptor), hex('11 02 00')]);
			expect(vp8DescriptorLength(key)).toBe(c.length);
			expect(vp8PictureId(key)).toBe(c.pictureId);
			expect(vp8.isFrameStart(key)).toBe(true);
			expect(vp8.isKeyframe(key)).toBe(true);
			expect(vp8.isFrameStart(delta)).toBe(true);
			expect(vp8.isKeyframe(delta)).toBe(false);
			expect(vp8.assemble([key])?.equals(hex('10 02 00 9d 01 2a'))).toBe(true);
		});
	}

	it('S=0 (continuation) and S=1 with a partition index > 0 do not start a frame, nor make a keyframe', () => {
		const continuation = hex('80 80 ab cd 10 00');
		const otherPartition = hex('91 80 ab cd 10 00');
		for (const p of [continuation, otherPartition]) {
			expect(vp8.isFrameStart(p)).toBe(false);
			expect(vp8.isKeyframe(p)).toBe(false);
			expect(vp8.assemble([p])).toBeUndefined();
		}
	});

	it('truncated descriptors are not frames (no throw)', () => {
		for (const p of ['', '90', '90 80', '90 80 ab', '90 80 ab cd', '90 40', '10']) {
			const buf = hex(p);
			expect(vp8.isFrameStart(buf), p).toBe(false);
			expect(vp8.isKeyframe(buf), p).toBe(false);
			expect(vp8.assemble([buf]), p).toBeUndefined();
		}
		expect(vp8.assemble([])).toBeUndefined();
		expect(vp8.assemble([hex('90 80 ab cd 10 00'), hex('80 80')])).toBeUndefined();
	});
});

describe('VP8 packetizer', () => {
	it('always writes X=1, I=1, L=1, T=1, a 15-bit picture ID, TL0PICIDX and TID 0 with Y=1, S=1 only on the first packet; sizes even and <= mtu', () => {
		const packetizer = new Vp8Packetizer(106, 0x1234);
		const frame = pattern(250, 1);
		const payloads = packetizer.packetize(frame);
		expect(payloads.map((p) => p.length)).toEqual([6 + 84, 6 + 84, 6 + 82]);
		expect(payloads[0]!.subarray(0, 6).toString('hex')).toBe('90e092343420');
		expect(payloads[1]!.subarray(0, 6).toString('hex')).toBe('80e092343420');
		expect(payloads[2]!.subarray(0, 6).toString('hex')).toBe('80e092343420');
		expect(vp8.isFrameStart(payloads[0]!)).toBe(true);
		expect(vp8.isFrameStart(payloads[1]!)).toBe(false);
		expect(vp8.assemble(payloads)?.equals(frame)).toBe(true);
		expect(packetizer.nextPictureId).toBe(0x1235);
		// TL0PICIDX counts pictures too (every picture is on temporal layer 0), in 8 bits.
		expect(packetizer.packetize(pattern(10, 0))[0]![4]).toBe(0x35);
	});

	it('the picture ID increments per frame and wraps from 0x7fff to 0', () => {
		const packetizer = packetizerFor('VP8', 1200, { firstPictureId: 0x7ffe });
		const ids = [0, 1, 2].map(() => vp8PictureId(packetizer.packetize(pattern(10, 0), false)[0]!));
		expect(ids).toEqual([0x7ffe, 0x7fff, 0]);
	});

	it('a frame of exactly mtu - 6 bytes is one packet; one more byte makes two', () => {
		const packetizer = new Vp8Packetizer(1200, 0);
		expect(packetizer.packetize(pattern(1194, 0))).toHaveLength(1);
		expect(packetizer.packetize(pattern(1195, 0)).map((p) => p.length)).toEqual([6 + 598, 6 + 597]);
		expect(packetizer.packetize(Buffer.alloc(0))).toEqual([]);
	});

	it('refuses an MTU that cannot hold the descriptor', () => {
		expect(() => packetizerFor('VP8', 6)).toThrow(TypeError);
	});
});

// NAL units for the H264 tests: header byte first.
const SPS = hex('67 42 e0 1f 8c 8d 40 50 17 fc b0 0f 08 84 6a');
const PPS = hex('68 ce 3c 80');
const SEI = hex('06 05 01 aa 80');
const idr = (size: number): Buffer => Buffer.concat([hex('65 88 84'), pattern(size - 3, 5)]);
/** Non-IDR slice: first_mb_in_slice 0 (first bit 1) starts a picture; 0x41 0x9a... */
const slice = (size: number, firstMbZero = true): Buffer => Buffer.concat([hex(firstMbZero ? '41 9a' : '41 1a'), pattern(size - 2, 9)]);
const annexB = (...nals: Buffer[]): Buffer => Buffer.concat(nals.flatMap((n) => [hex('00 00 00 01'), n]));

describe('H264 Annex B', () => {
	it('splits on 3- and 4-byte start codes and drops trailing zero bytes', () => {
		const stream = Buffer.concat([hex('00 00 00 01'), SPS, hex('00 00 01'), PPS, hex('00 00 00 00 01'), SEI, hex('00')]);
		expect(splitAnnexB(stream).map((n) => n.toString('hex'))).toEqual([SPS, PPS, SEI].map((n) => n.toString('hex')));
		expect(splitAnnexB(Buffer.alloc(0))).toEqual([]);
		expect(splitAnnexB(hex('01 02 03'))).toEqual([]);
	});
});

describe('H264 packetizer and depacketizer (RFC 6184, packetization-mode 1)', () => {
	it('SPS+PPS go in one STAP-A, small NALs as single NAL packets, big ones as FU-A; all <= mtu; assembled back to the same bytes', () => {
		const au = annexB(SPS, PPS, SEI, idr(3000));
		const payloads = new H264Packetizer(1200).packetize(au);
		expect(payloads.every((p) => p.length <= 1200)).toBe(true);
		// STAP-A: F=0, NRI = max(3, 3), type 24; then size + NAL, size + NAL.
		expect(payloads[0]!.toString('hex')).toBe('78' + '000f' + SPS.toString('hex') + '0004' + PPS.toString('hex'));
		expect(payloads[1]!.equals(SEI)).toBe(true);
		const fus = payloads.slice(2);
		expect(fus).toHaveLength(3);
		// FU indicator: NRI of the IDR (0x60) | 28; FU header: S/E bits | type 5.
		expect(fus.map((p) => p.subarray(0, 2).toString('hex'))).toEqual(['7c85', '7c05', '7c45']);
		expect(h264.assemble(payloads)?.equals(au)).toBe(true);
		expect(h264.isKeyframeFrame!(payloads)).toBe(true);
		expect(h264.isFrameStart(payloads[0]!)).toBe(true);
		expect(h264.isFrameStart(fus[1]!)).toBe(false);
	});

	it('a NAL of exactly mtu bytes goes whole; one more byte makes an FU-A', () => {
		const packetizer = new H264Packetizer(1200);
		expect(packetizer.packetize(annexB(slice(1200)))).toHaveLength(1);
		const fus = packetizer.packetize(annexB(slice(1201)));
		expect(fus.map((p) => p.length)).toEqual([2 + 600, 2 + 600]);
		expect(h264.assemble(fus)?.equals(annexB(slice(1201)))).toBe(true);
	});

	it('a lone SPS is sent as a single NAL; 3-byte start codes come back as 4-byte ones', () => {
		const au = Buffer.concat([hex('00 00 01'), SPS, hex('00 00 01'), slice(100)]);
		const payloads = new H264Packetizer().packetize(au);
		expect(payloads.map((p) => p[0]! & 0x1f)).toEqual([7, 1]);
		expect(h264.assemble(payloads)?.equals(annexB(SPS, slice(100)))).toBe(true);
	});

	it('keyframe means an IDR in the frame: SPS/PPS alone is not enough', () => {
		const packetizer = new H264Packetizer(1200);
		expect(h264.isKeyframeFrame!(packetizer.packetize(annexB(SPS, PPS)))).toBe(false);
		expect(h264.isKeyframeFrame!(packetizer.packetize(annexB(SPS, PPS, slice(500))))).toBe(false);
		expect(h264.isKeyframeFrame!(packetizer.packetize(annexB(idr(500))))).toBe(true);
		expect(h264.isKeyframe(idr(10))).toBe(true);
		expect(h264.isKeyframe(SPS)).toBe(false);
		// STAP-A holding an IDR.
		expect(h264.isKeyframe(Buffer.concat([hex('78 0004'), PPS, hex('000a'), idr(10)]))).toBe(true);
	});

	it('frame starts: AUD, SEI, SPS, PPS, a slice with first_mb_in_slice 0, an FU-A start of one; not a later slice nor an FU-A middle', () => {
		expect(h264.isFrameStart(hex('09 f0'))).toBe(true);
		expect(h264.isFrameStart(SEI)).toBe(true);
		expect(h264.isFrameStart(SPS)).toBe(true);
		expect(h264.isFrameStart(PPS)).toBe(true);
		expect(h264.isFrameStart(slice(20))).toBe(true);
		expect(h264.isFrameStart(slice(20, false))).toBe(false);
		expect(h264.isFrameStart(hex('7c 85 88 84'))).toBe(true);
		expect(h264.isFrameStart(hex('7c 05 88 84'))).toBe(false);
		expect(h264.isFrameStart(hex('7c 85 08 84'))).toBe(false); // FU-A start of a slice that is not the first
		expect(h264.isFrameStart(Buffer.alloc(0))).toBe(false);
	});

	it('parameter sets sent as a frame of their own (own timestamp) are not dropped: the jitter buffer prepends them to the keyframe', () => {
		const packetizer = new H264Packetizer(1200);
		expect(h264.isConfigOnly!(packetizer.packetize(annexB(SPS, PPS)))).toBe(true);
		expect(h264.isConfigOnly!([hex('09 f0'), SPS, PPS, SEI])).toBe(true);
		expect(h264.isConfigOnly!([SEI])).toBe(false);
		expect(h264.isConfigOnly!(packetizer.packetize(annexB(SPS, PPS, slice(100))))).toBe(false);
		expect(h264.isConfigOnly!(packetizer.packetize(annexB(SPS, PPS, idr(3000))))).toBe(false);

		const sender = new RtpSender({ ssrc: 3, payloadType: 102, firstSequenceNumber: 500 });
		const buffer = new JitterBuffer({ depacketizer: h264 });
		const send = (au: Buffer, ts: number): void => {
			for (const bytes of sender.packets(packetizer.packetize(au), ts)) buffer.push(parseRtp(bytes)!, 0);
		};
		send(annexB(slice(300)), 0); // a delta frame before the first keyframe: dropped
		send(annexB(SPS, PPS), 3000);
		send(annexB(idr(2500)), 6000);
		send(annexB(slice(300)), 9000);
		const frames = buffer.pop(0);
		expect(frames.map((f) => [f.timestamp, f.keyframe])).toEqual([
			[6000, true],
			[9000, false],
		]);
		expect(frames[0]!.data.equals(annexB(SPS, PPS, idr(2500)))).toBe(true);
		expect(buffer.stats).toMatchObject({ framesDropped: 1, framesDelivered: 2 });
	});

	it('broken FU-A sequences and malformed packets give undefined, not garbage', () => {
		const fus = new H264Packetizer(1200).packetize(annexB(idr(3000)));
		expect(fus).toHaveLength(3);
		const [start, middle, end] = fus as [Buffer, Buffer, Buffer];
		expect(h264.assemble([middle, end])).toBeUndefined(); // no start
		expect(h264.assemble([start, middle])).toBeUndefined(); // no end
		expect(h264.assemble([start, start, middle, end])).toBeUndefined(); // start while open
		expect(h264.assemble([start, SPS, middle, end])).toBeUndefined(); // another NAL inside
		expect(h264.assemble([hex('7c')])).toBeUndefined(); // too short
		expect(h264.assemble([hex('78 00 09 67 42')])).toBeUndefined(); // STAP-A size past the end
		expect(h264.assemble([hex('78 00 00')])).toBeUndefined(); // STAP-A zero size
		expect(h264.assemble([hex('79 00 01 02')])).toBeUndefined(); // STAP-B: not mode 1
		expect(h264.assemble([])).toBeUndefined();
		expect(h264.assemble([start, middle, end])?.equals(annexB(idr(3000)))).toBe(true);
	});
});

describe('Opus', () => {
	it('one packet is one frame, always decodable on its own', () => {
		const frame = pattern(160, 3);
		expect(packetizerFor('opus').packetize(frame, true)).toEqual([frame]);
		expect(opus.isFrameStart(frame)).toBe(true);
		expect(opus.isKeyframe(frame)).toBe(true);
		expect(opus.assemble([frame])).toBe(frame);
		expect(opus.assemble([frame, frame])).toBeUndefined();
	});

	it('through the jitter buffer: each packet a frame whatever the marker bit, and a lost one is NACKed and waited for', () => {
		const sender = new RtpSender({ ssrc: 5, payloadType: 111, firstSequenceNumber: 10 });
		const buffer = new JitterBuffer({ depacketizer: opus, maxWaitMs: 100 });
		const frames = Array.from({ length: 4 }, (_, i) => pattern(100 + i, i));
		// Opus senders set the marker only at a talkspurt start: send without it (sender marks a frame's last packet,
		// so strip it here).
		const packets = frames.map((f, i) => ({ ...parseRtp(sender.packets([f], i * 960)[0]!)!, marker: false }));
		buffer.push(packets[0]!, 0);
		expect(buffer.pop(0).map((f) => f.data)).toEqual([frames[0]]);
		buffer.push(packets[2]!, 20);
		buffer.push(packets[3]!, 40);
		expect(buffer.pop(40)).toEqual([]);
		expect(buffer.nacks(40)).toEqual([11]);
		buffer.push(packets[1]!, 45);
		expect(buffer.pop(45).map((f) => f.data)).toEqual(frames.slice(1));
	});
});

describe('RtpSender', () => {
	it('numbers packets consecutively across frames and the wrap, marks each frame\'s last packet, counts payload octets', () => {
		const sender = new RtpSender({ ssrc: 0xabcdef01, payloadType: 96, firstSequenceNumber: 65534 });
		const first = sender.packets([pattern(10, 0), pattern(20, 1), pattern(30, 2)], 0xfffffffe).map((b) => parseRtp(b)!);
		const second = sender.packets([pattern(5, 3)], 3000).map((b) => parseRtp(b)!);
		expect(first.map((p) => [p.sequenceNumber, p.marker, p.timestamp])).toEqual([
			[65534, false, 0xfffffffe],
			[65535, false, 0xfffffffe],
			[0, true, 0xfffffffe],
		]);
		expect(second.map((p) => [p.sequenceNumber, p.marker, p.ssrc, p.payloadType])).toEqual([[1, true, 0xabcdef01, 96]]);
		expect(sender.nextSequenceNumber).toBe(2);
		expect(sender.packetCount).toBe(4);
		expect(sender.octetCount).toBe(65);
		expect(sender.packets([], 0)).toEqual([]);
	});

	it('refuses payload types that clash with RTCP and out-of-range SSRCs', () => {
		expect(() => new RtpSender({ ssrc: 1, payloadType: 72, firstSequenceNumber: 0 })).toThrow(/payloadType/);
		expect(() => new RtpSender({ ssrc: 1, payloadType: 128, firstSequenceNumber: 0 })).toThrow(/payloadType/);
		expect(() => new RtpSender({ ssrc: -1, payloadType: 96, firstSequenceNumber: 0 })).toThrow(/ssrc/);
	});
});

// ---------------------------------------------------------------------------------------------------------------
// Real bitstreams from FFmpeg (libvpx, libx264): 12 frames of 640x360 test pattern, a keyframe every 5 frames.

const FRAMES = 12;
const GOP = 5;
const expectedKeyframes = Array.from({ length: FRAMES }, (_, i) => i % GOP === 0);

function ffmpegVideo(codecArgs: string[], format: string): Buffer {
	const { path } = resolveFfmpeg();
	const args = ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-frames:v', String(FRAMES), ...codecArgs, '-g', String(GOP), '-keyint_min', String(GOP), '-f', format, 'pipe:1'];
	const result = spawnSync(path, args, { maxBuffer: 64 * 1024 * 1024, timeout: 20_000 });
	if (result.status !== 0) throw new Error(`ffmpeg failed: ${result.stderr.toString()}`);
	return result.stdout;
}

/** Frames of an IVF file (32-byte header, then 12-byte frame headers with a little-endian size). */
function ivfFrames(ivf: Buffer): Buffer[] {
	const frames: Buffer[] = [];
	for (let o = ivf.readUInt16LE(6); o + 12 <= ivf.length; ) {
		const size = ivf.readUInt32LE(o);
		frames.push(ivf.subarray(o + 12, o + 12 + size));
		o += 12 + size;
	}
	return frames;
}

/** Access units of an Annex B stream with access unit delimiters: each starts at an AUD. */
function accessUnits(stream: Buffer): Buffer[] {
	const starts: number[] = [];
	for (let i = 0; i + 4 < stream.length; i++) {
		if (stream[i] === 0 && stream[i + 1] === 0 && stream[i + 2] === 0 && stream[i + 3] === 1 && (stream[i + 4]! & 0x1f) === 9) starts.push(i);
	}
	return starts.map((s, i) => stream.subarray(s, starts[i + 1] ?? stream.length));
}

/**
 * frames -> packetizer (mtu 1200) -> RtpSender -> bytes -> parseRtp -> jitter buffer, with adjacent packets swapped and
 * one packet lost then repaired by NACK: the frames that come out must be the frames that went in.
 */
function roundTrip(codec: 'VP8' | 'H264' | 'opus', frames: Buffer[], keyframes: boolean[]): EncodedFrame[] {
	const packetizer = packetizerFor(codec, 1200);
	const sender = new RtpSender({ ssrc: 42, payloadType: 100, firstSequenceNumber: 65500 });
	const wire: Buffer[] = [];
	frames.forEach((frame, i) => {
		const payloads = packetizer.packetize(frame, keyframes[i]!);
		for (const p of payloads) expect(p.length).toBeLessThanOrEqual(1200);
		wire.push(...sender.packets(payloads, (i * 3000) >>> 0));
	});
	for (let i = 1; i + 1 < wire.length; i += 4) [wire[i], wire[i + 1]] = [wire[i + 1]!, wire[i]!];
	const lostIndex = Math.floor(wire.length / 2);
	const lost = parseRtp(wire[lostIndex]!)!;
	// Repair after a few more packets, at a point where no swapped pair is half delivered.
	let repairAfter = lostIndex + 2;
	while (repairAfter % 4 !== 3) repairAfter++;
	const buffer = new JitterBuffer({ depacketizer: depacketizerFor(codec) });
	const out: EncodedFrame[] = [];
	let now = 0;
	wire.forEach((bytes, i) => {
		if (i === lostIndex) return;
		buffer.push(parseRtp(Buffer.from(bytes))!, now);
		out.push(...buffer.pop(now));
		now += 1;
		if (i === repairAfter) {
			// The NACK goes out, the retransmission comes back.
			now += 10;
			expect(buffer.nacks(now)).toEqual([lost.sequenceNumber]);
			buffer.push(lost, now);
			out.push(...buffer.pop(now));
		}
	});
	expect(buffer.stats).toMatchObject({ lost: 0, repaired: 1, framesDropped: 0, framesDelivered: frames.length });
	return out;
}

describe('round trips of real bitstreams (FFmpeg), frames bigger than the MTU, through RTP and the jitter buffer', () => {
	let vp8Frames: Buffer[] = [];
	let h264Frames: Buffer[] = [];

	beforeAll(() => {
		vp8Frames = ivfFrames(ffmpegVideo(['-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '2M'], 'ivf'));
		h264Frames = accessUnits(
			ffmpegVideo(['-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'ultrafast', '-tune', 'zerolatency', '-sc_threshold', '0', '-b:v', '2M', '-bsf:v', 'h264_metadata=aud=insert'], 'h264'),
		);
	}, 30_000);

	it('VP8 (libvpx): keyframes detected where the encoder put them; every frame comes back byte for byte', () => {
		expect(vp8Frames).toHaveLength(FRAMES);
		expect(Math.max(...vp8Frames.map((f) => f.length))).toBeGreaterThan(1200);
		const out = roundTrip('VP8', vp8Frames, expectedKeyframes);
		expect(out.map((f) => f.keyframe)).toEqual(expectedKeyframes);
		out.forEach((f, i) => expect(f.data.equals(vp8Frames[i]!), `frame ${i}`).toBe(true));
		expect(out.map((f) => f.afterLoss)).toEqual(Array<boolean>(FRAMES).fill(false));
	});

	it('H264 (libx264): IDR access units are the keyframes; every access unit comes back byte for byte', () => {
		expect(h264Frames).toHaveLength(FRAMES);
		expect(Math.max(...h264Frames.map((f) => f.length))).toBeGreaterThan(1200);
		// libx264 repeats SPS/PPS before each IDR: the first packet of a keyframe is the STAP-A, not the IDR itself.
		const firstKeyPayloads = new H264Packetizer(1200).packetize(h264Frames[0]!);
		expect(firstKeyPayloads.map((p) => p[0]! & 0x1f).slice(0, 2)).toEqual([9, 24]);
		const out = roundTrip('H264', h264Frames, expectedKeyframes);
		expect(out.map((f) => f.keyframe)).toEqual(expectedKeyframes);
		// Compared with 4-byte start codes throughout (libx264 writes 3-byte ones before a frame's later slices).
		out.forEach((f, i) => expect(f.data.equals(annexB(...splitAnnexB(h264Frames[i]!))), `access unit ${i}`).toBe(true));
	});

	it('Opus: packets of generated bytes come back one frame each', () => {
		const frames = Array.from({ length: 20 }, (_, i) => pattern(60 + i * 7, i));
		const out = roundTrip('opus', frames, frames.map(() => true));
		out.forEach((f, i) => expect(f.data.equals(frames[i]!), `packet ${i}`).toBe(true));
	});

	it('VP8 and H264 streams that start at a delta frame are decoded from the first keyframe, which is not lost', () => {
		for (const [codec, frames] of [
			['VP8', vp8Frames],
			['H264', h264Frames],
		] as const) {
			const packetizer = packetizerFor(codec, 1200);
			const sender = new RtpSender({ ssrc: 42, payloadType: 100, firstSequenceNumber: 1 });
			const buffer = new JitterBuffer({ depacketizer: depacketizerFor(codec) });
			const out: EncodedFrame[] = [];
			// Join at frame 2: frames 2-4 are delta frames, 5 is the keyframe.
			frames.slice(2).forEach((frame, i) => {
				for (const bytes of sender.packets(packetizer.packetize(frame, false), i * 3000)) buffer.push(parseRtp(bytes)!, i);
				out.push(...buffer.pop(i));
			});
			expect(out[0]?.keyframe, codec).toBe(true);
			expect(out[0]!.data.equals(codec === 'H264' ? annexB(...splitAnnexB(frames[5]!)) : frames[5]!), codec).toBe(true);
			expect(out, codec).toHaveLength(FRAMES - 5);
			expect(buffer.stats.framesDropped, codec).toBe(3);
		}
	});

	it('serializeRtp of a parsed packet gives the same bytes (what the engine forwards unchanged)', () => {
		const sender = new RtpSender({ ssrc: 9, payloadType: 96, firstSequenceNumber: 7 });
		for (const bytes of sender.packets(packetizerFor('VP8').packetize(vp8Frames[0]!, true), 123)) {
			expect(serializeRtp(parseRtp(bytes)!).equals(bytes)).toBe(true);
		}
	});
});
