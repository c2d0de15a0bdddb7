/**
 * VideoTranscoder on real node-av: input streams are made here with libvpx and
 * libx264, and every output is checked by parsing its bitstream and decoding it
 * again with a fresh decoder.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Codec, CodecContext, Dictionary, Frame, Packet, Rational } from 'node-av/lib';
import {
	AV_CODEC_ID_H264,
	AV_CODEC_ID_VP8,
	AV_PICTURE_TYPE_I,
	AV_PICTURE_TYPE_NONE,
	AV_PIX_FMT_YUV420P,
	AVERROR_EAGAIN,
	FF_ENCODER_LIBVPX_VP8,
	FF_ENCODER_LIBX264,
} from 'node-av/constants';
import { VideoTranscoder, type EncodedPicture, type VideoCodec, type VideoOutput } from '../../src/reencoder/libav/VideoTranscoder.js';
import { ClosedError, InvalidOptionError } from '../../src/errors.js';

const FRAME_90K = 3000; // 30 fps

// ---- making input -------------------------------------------------------------

/** Encodes `count` synthetic pictures (a moving gradient and block); keyframes only at `keyframesAt`. */
async function makeStream(codec: VideoCodec, width: number, height: number, count: number, keyframesAt: number[] = [0]): Promise<Buffer[]> {
	const encoder = new CodecContext();
	const libCodec = Codec.findEncoderByName(codec === 'VP8' ? FF_ENCODER_LIBVPX_VP8 : FF_ENCODER_LIBX264)!;
	encoder.allocContext3(libCodec);
	encoder.width = width;
	encoder.height = height;
	encoder.pixelFormat = AV_PIX_FMT_YUV420P;
	encoder.timeBase = new Rational(1, 90_000);
	encoder.framerate = new Rational(30, 1);
	encoder.gopSize = 1 << 30;
	encoder.maxBFrames = 0;
	encoder.bitRate = 1_000_000n;
	encoder.threadCount = 1;
	const options =
		codec === 'VP8'
			? { deadline: 'realtime', 'cpu-used': '16', 'lag-in-frames': '0' }
			: { preset: 'ultrafast', tune: 'zerolatency', profile: 'baseline', 'forced-idr': '1', 'x264-params': 'scenecut=0' };
	const dictionary = Dictionary.fromObject(options);
	expect(await encoder.open2(libCodec, dictionary)).toBe(0);
	dictionary.free();
	const frame = new Frame();
	frame.alloc();
	frame.width = width;
	frame.height = height;
	frame.format = AV_PIX_FMT_YUV420P;
	expect(frame.allocBuffer()).toBe(0);
	const packet = new Packet();
	packet.alloc();
	const out: Buffer[] = [];
	for (let i = 0; i < count; i++) {
		expect(frame.makeWritable()).toBe(0);
		paint(frame, i);
		frame.pts = BigInt(i * FRAME_90K);
		frame.pictType = keyframesAt.includes(i) ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
		expect(await encoder.sendFrame(frame)).toBe(0);
		for (;;) {
			const received = await encoder.receivePacket(packet);
			if (received === AVERROR_EAGAIN) break;
			expect(received).toBe(0);
			out.push(Buffer.from(packet.data!));
			packet.unref();
		}
	}
	expect(out).toHaveLength(count);
	packet.free();
	frame.free();
	encoder.freeContext();
	return out;
}

function paint(frame: Frame, i: number): void {
	const [y, u, v] = frame.data!;
	const [yStride, uStride] = frame.linesize;
	for (let row = 0; row < frame.height; row++) y!.fill((row + i * 4) & 255, row * yStride!, row * yStride! + frame.width);
	const block = 32 + ((i * 8) % (frame.width - 64));
	for (let row = 16; row < 48; row++) y!.fill(250, row * yStride! + block, row * yStride! + block + 32);
	u!.fill(100 + (i % 50));
	v!.fill(150);
	void uStride;
}

// ---- reading output ---------------------------------------------------------------

/** VP8: the P bit of the frame tag is 0 on a keyframe (RFC 6386 §9.1). */
function vp8IsKeyframe(data: Buffer): boolean {
	return (data[0]! & 1) === 0;
}

/** VP8 keyframe size, from the start code 9d 01 2a and the 14-bit width and height that follow. */
function vp8KeyframeSize(data: Buffer): { width: number; height: number } {
	expect([...data.subarray(3, 6)]).toEqual([0x9d, 0x01, 0x2a]);
	return { width: data.readUInt16LE(6) & 0x3fff, height: data.readUInt16LE(8) & 0x3fff };
}

/** NAL units of an Annex B access unit. */
function h264Nals(data: Buffer): Buffer[] {
	const starts: { at: number; payload: number }[] = [];
	for (let i = 0; i + 2 < data.length; i++) {
		if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
			starts.push({ at: i > 0 && data[i - 1] === 0 ? i - 1 : i, payload: i + 3 });
			i += 2;
		}
	}
	return starts.map((start, n) => data.subarray(start.payload, n + 1 < starts.length ? starts[n + 1]!.at : data.length));
}

const nalTypes = (data: Buffer): number[] => h264Nals(data).map((nal) => nal[0]! & 0x1f);

/** An IDR (NAL type 5) is a keyframe; the relay also needs SPS (7) and PPS (8) in band before it. */
function h264IsKeyframe(data: Buffer): boolean {
	const types = nalTypes(data);
	if (!types.includes(5)) return false;
	const idr = types.indexOf(5);
	expect(types.indexOf(7), 'SPS before the IDR').toBeGreaterThanOrEqual(0);
	expect(types.indexOf(7)).toBeLessThan(idr);
	expect(types.indexOf(8), 'PPS before the IDR').toBeGreaterThanOrEqual(0);
	expect(types.indexOf(8)).toBeLessThan(idr);
	return true;
}

function bitstreamKeyframe(codec: VideoCodec, data: Buffer): boolean {
	return codec === 'VP8' ? vp8IsKeyframe(data) : h264IsKeyframe(data);
}

/** Decodes `frames` with a fresh decoder; every one must give a picture. Returns their sizes. */
async function decodeAll(codec: VideoCodec, frames: Buffer[]): Promise<{ width: number; height: number }[]> {
	const libCodec = Codec.findDecoder(codec === 'VP8' ? AV_CODEC_ID_VP8 : AV_CODEC_ID_H264)!;
	const decoder = new CodecContext();
	decoder.allocContext3(libCodec);
	decoder.threadCount = 1;
	expect(await decoder.open2(libCodec, null)).toBe(0);
	const packet = new Packet();
	packet.alloc();
	const frame = new Frame();
	frame.alloc();
	const sizes: { width: number; height: number }[] = [];
	for (const [n, data] of frames.entries()) {
		packet.data = data;
		expect(await decoder.sendPacket(packet), `output frame ${n} decodes`).toBe(0);
		packet.unref();
		expect(await decoder.receiveFrame(frame), `output frame ${n} gives a picture`).toBe(0);
		sizes.push({ width: frame.width, height: frame.height });
		frame.unref();
	}
	frame.free();
	packet.free();
	decoder.freeContext();
	return sizes;
}

// ---- fixtures -------------------------------------------------------------------

const output = (codec: VideoCodec, width = 640, height = 360, more: Partial<VideoOutput> = {}): VideoOutput => ({
	codec,
	width,
	height,
	fps: 30,
	bitrateKbps: 800,
	threads: 1,
	...more,
});

const streams: Record<string, Buffer[]> = {};
beforeAll(async () => {
	streams.vp8 = await makeStream('VP8', 640, 360, 30);
	streams.h264 = await makeStream('H264', 640, 360, 30);
	streams.vp8Small = await makeStream('VP8', 320, 240, 6);
	streams.h264Small = await makeStream('H264', 320, 240, 6);
});

const open: VideoTranscoder[] = [];
async function transcoder(input: VideoCodec, out: VideoOutput): Promise<VideoTranscoder> {
	const t = await VideoTranscoder.create({ input, output: out });
	open.push(t);
	return t;
}
afterEach(() => {
	for (const t of open.splice(0)) t.close();
});

/** Decodes each input frame and encodes one output picture for it. */
async function transcodeAll(t: VideoTranscoder, input: Buffer[], keyframesAt: number[] = [], firstPts = 0): Promise<EncodedPicture[]> {
	const out: EncodedPicture[] = [];
	for (const [i, frame] of input.entries()) {
		expect(await t.decode(frame), `input frame ${i}`).toBe('picture');
		const pictures = await t.encode({ pts90k: firstPts + i * FRAME_90K, keyframe: keyframesAt.includes(i) });
		expect(pictures, `one picture out for input ${i}`).toHaveLength(1);
		out.push(...pictures);
	}
	return out;
}

// ---- tests ------------------------------------------------------------------------

describe('round trips: every output picture decodes with a fresh decoder, at the size asked', () => {
	for (const [input, out, width, height] of [
		['VP8', 'VP8', 640, 360],
		['VP8', 'VP8', 480, 270],
		['H264', 'VP8', 480, 270],
		['VP8', 'H264', 640, 360],
		['H264', 'H264', 320, 180],
	] as const) {
		it(`${input} 640x360 -> ${out} ${width}x${height}`, async () => {
			const t = await transcoder(input, output(out, width, height));
			const pictures = await transcodeAll(t, streams[input === 'VP8' ? 'vp8' : 'h264']!);
			expect(t.outputSize).toEqual({ width, height });
			expect(t.inputSize).toEqual({ width: 640, height: 360 });
			const sizes = await decodeAll(out, pictures.map((p) => p.data));
			expect(sizes).toHaveLength(30);
			for (const size of sizes) expect(size).toEqual({ width, height });
			if (out === 'H264') {
				// Annex B, and the SPS says Constrained Baseline: profile_idc 66 with constraint_set1.
				expect([...pictures[0]!.data.subarray(0, 4)]).toEqual([0, 0, 0, 1]);
				const sps = h264Nals(pictures[0]!.data).find((nal) => (nal[0]! & 0x1f) === 7)!;
				expect(sps[1]).toBe(66);
				expect(sps[2]! & 0x40).toBe(0x40);
			}
			expect(t.stats).toMatchObject({ decoded: 30, decodeErrors: 0, encoded: 30, keyframes: 1 });
		});
	}
});

describe('keyframes exactly where asked', () => {
	for (const codec of ['VP8', 'H264'] as const) {
		it(`${codec}: asked at pictures 10 and 11 of 30, keyframes at 0, 10 and 11 only (bitstream and flag agree)`, async () => {
			const t = await transcoder('VP8', output(codec));
			const pictures = await transcodeAll(t, streams.vp8!, [10, 11]);
			const inBitstream = pictures.flatMap((p, i) => (bitstreamKeyframe(codec, p.data) ? [i] : []));
			const flagged = pictures.flatMap((p, i) => (p.keyframe ? [i] : []));
			expect(inBitstream).toEqual([0, 10, 11]);
			expect(flagged).toEqual([0, 10, 11]);
			expect(t.stats.keyframes).toBe(3);
			await decodeAll(codec, pictures.map((p) => p.data));
		});
	}
});

describe('repeating the last good picture', () => {
	for (const codec of ['VP8', 'H264'] as const) {
		it(`${codec}: encode() 5 times after one decode gives 5 decodable pictures`, async () => {
			const t = await transcoder('VP8', output(codec));
			expect(await t.decode(streams.vp8![0]!)).toBe('picture');
			const pictures: EncodedPicture[] = [];
			for (let i = 0; i < 5; i++) pictures.push(...(await t.encode({ pts90k: i * FRAME_90K, keyframe: false })));
			expect(pictures).toHaveLength(5);
			expect(pictures.map((p) => bitstreamKeyframe(codec, p.data))).toEqual([true, false, false, false, false]);
			expect(await decodeAll(codec, pictures.map((p) => p.data))).toHaveLength(5);
			expect(t.stats).toMatchObject({ decoded: 1, encoded: 5 });
		});
	}

	it('encode() before any picture was decoded gives nothing', async () => {
		const t = await transcoder('VP8', output('VP8'));
		expect(t.hasPicture).toBe(false);
		expect(await t.encode({ pts90k: 0, keyframe: true })).toEqual([]);
	});

	it('a pts not above the last one is refused', async () => {
		const t = await transcoder('VP8', output('VP8'));
		await t.decode(streams.vp8![0]!);
		await t.encode({ pts90k: 3000, keyframe: false });
		await expect(t.encode({ pts90k: 3000, keyframe: false })).rejects.toThrow(InvalidOptionError);
		expect(await t.encode({ pts90k: 6000, keyframe: false })).toHaveLength(1);
	});
});

describe('effort', () => {
	it('VP8: effort 1 keeps the size, effort 2 halves it starting with a keyframe, effort 0 restores it with a keyframe', async () => {
		const t = await transcoder('VP8', output('VP8', 640, 360));
		const input = streams.vp8!;
		const out: EncodedPicture[] = [];
		const effortAt: Record<number, 0 | 1 | 2> = { 5: 1, 10: 2, 20: 0 };
		for (const [i, frame] of input.entries()) {
			if (effortAt[i] !== undefined) t.setEffort(effortAt[i]);
			expect(await t.decode(frame)).toBe('picture');
			out.push(...(await t.encode({ pts90k: i * FRAME_90K, keyframe: false })));
			if (i === 10) expect(t.outputSize).toEqual({ width: 320, height: 180 });
		}
		expect(t.effort).toBe(0);
		expect(t.outputSize).toEqual({ width: 640, height: 360 });
		const keyframes = out.flatMap((p, i) => (vp8IsKeyframe(p.data) ? [i] : []));
		// Every effort change reopens the encoder (cheaper settings cannot be changed in a running libvpx).
		expect(keyframes).toEqual([0, 5, 10, 20]);
		expect(vp8KeyframeSize(out[5]!.data)).toEqual({ width: 640, height: 360 });
		expect(vp8KeyframeSize(out[10]!.data)).toEqual({ width: 320, height: 180 });
		expect(vp8KeyframeSize(out[20]!.data)).toEqual({ width: 640, height: 360 });
		const sizes = await decodeAll('VP8', out.map((p) => p.data));
		expect(sizes[9]).toEqual({ width: 640, height: 360 });
		expect(sizes[10]).toEqual({ width: 320, height: 180 });
		expect(sizes[19]).toEqual({ width: 320, height: 180 });
		expect(sizes[20]).toEqual({ width: 640, height: 360 });
	});

	it('H264: effort 2 halves the size with an IDR (new SPS), back to 0 restores it', async () => {
		const t = await transcoder('VP8', output('H264', 640, 360));
		const out: EncodedPicture[] = [];
		for (const [i, frame] of streams.vp8!.slice(0, 12).entries()) {
			if (i === 4) t.setEffort(2);
			if (i === 8) t.setEffort(0);
			await t.decode(frame);
			out.push(...(await t.encode({ pts90k: i * FRAME_90K, keyframe: false })));
		}
		expect(out.flatMap((p, i) => (h264IsKeyframe(p.data) ? [i] : []))).toEqual([0, 4, 8]);
		const sizes = await decodeAll('H264', out.map((p) => p.data));
		expect(sizes.map((s) => s.width)).toEqual([640, 640, 640, 640, 320, 320, 320, 320, 640, 640, 640, 640]);
	});

	it('an effort other than 0, 1 or 2 is refused', async () => {
		const t = await transcoder('VP8', output('VP8'));
		expect(() => t.setEffort(3 as never)).toThrow(InvalidOptionError);
	});
});

describe('bad input', () => {
	for (const codec of ['VP8', 'H264'] as const) {
		it(`${codec}: garbage and frames before a keyframe give 'error' or 'none', never a throw; a keyframe recovers`, async () => {
			const t = await transcoder(codec, output('VP8'));
			const input = streams[codec === 'VP8' ? 'vp8' : 'h264']!;
			// A delta frame first: no reference to decode it against.
			expect(await t.decode(input[3]!)).toBe('error');
			expect(await t.decode(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).toMatch(/^(error|none)$/);
			expect(await t.decode(Buffer.alloc(0))).toBe('error');
			expect(t.hasPicture).toBe(false);
			expect(await t.decode(input[0]!)).toBe('picture');
			expect(await t.decode(input[1]!)).toBe('picture');
			expect(t.awaitingKeyframe).toBe(false);
		});
	}

	for (const codec of ['VP8', 'H264'] as const) {
		it(`${codec}: a frame cut short mid-stream gives error, and the following delta frames too until a keyframe`, async () => {
			const t = await transcoder(codec, output('VP8'));
			const recovery = await makeStream(codec, 640, 360, 12, [0, 8]);
			for (const frame of recovery.slice(0, 4)) expect(await t.decode(frame)).toBe('picture');
			// Frame 4 cut short, as after an unrepaired loss. H264: to a third (the decoder conceals, and says
			// so). VP8: into its first partition; FFmpeg's VP8 decoder cannot tell a cut in the last (token)
			// partition, whose size is implied, and decodes it as a picture: only whole frames may come in.
			const cut = codec === 'VP8' ? 12 : Math.floor(recovery[4]!.length / 3);
			expect(await t.decode(recovery[4]!.subarray(0, cut))).toBe('error');
			expect(t.awaitingKeyframe).toBe(true);
			for (const frame of recovery.slice(5, 8)) expect(await t.decode(frame)).toBe('error');
			// The last good picture is still there to repeat.
			expect(await t.encode({ pts90k: 0, keyframe: false })).toHaveLength(1);
			expect(await t.decode(recovery[8]!)).toBe('picture');
			expect(await t.decode(recovery[9]!)).toBe('picture');
			expect(t.awaitingKeyframe).toBe(false);
			expect(t.stats).toMatchObject({ decoded: 6, decodeErrors: 4 });
		});
	}

	it('options that cannot work are refused with InvalidOptionError', async () => {
		await expect(VideoTranscoder.create({ input: 'VP9' as never, output: output('VP8') })).rejects.toThrow(InvalidOptionError);
		await expect(VideoTranscoder.create({ input: 'VP8', output: output('VP8', 641, 360) })).rejects.toThrow(/even/);
		await expect(VideoTranscoder.create({ input: 'VP8', output: output('VP8', 640, 360, { threads: 0 }) })).rejects.toThrow(InvalidOptionError);
	});
});

describe('input resolution changes mid-stream', () => {
	for (const codec of ['VP8', 'H264'] as const) {
		it(`${codec}: 640x360, then 320x240, then 640x360 again; the output stays at its size and decodes`, async () => {
			const t = await transcoder(codec, output('VP8', 480, 270));
			const big = streams[codec === 'VP8' ? 'vp8' : 'h264']!.slice(0, 4);
			const small = streams[codec === 'VP8' ? 'vp8Small' : 'h264Small']!;
			const out: EncodedPicture[] = [];
			out.push(...(await transcodeAll(t, big, [], 0)));
			expect(t.inputSize).toEqual({ width: 640, height: 360 });
			out.push(...(await transcodeAll(t, small, [], 100_000)));
			expect(t.inputSize).toEqual({ width: 320, height: 240 });
			out.push(...(await transcodeAll(t, big, [], 200_000)));
			expect(t.inputSize).toEqual({ width: 640, height: 360 });
			const sizes = await decodeAll('VP8', out.map((p) => p.data));
			expect(sizes).toHaveLength(14);
			for (const size of sizes) expect(size).toEqual({ width: 480, height: 270 });
		});
	}
});

describe('close', () => {
	it('is idempotent; a call in flight finishes, one queued behind it is skipped, later calls reject with ClosedError', async () => {
		const t = await transcoder('VP8', output('H264'));
		await t.decode(streams.vp8![0]!);
		const decoding = t.decode(streams.vp8![1]!);
		const encoding = t.encode({ pts90k: 0, keyframe: false });
		// Let the decode start: its native call is then in libuv's thread pool.
		await new Promise((resolve) => setImmediate(resolve));
		t.close();
		t.close();
		expect(t.closed).toBe(true);
		expect(await decoding).toBe('picture');
		expect(await encoding).toEqual([]);
		await expect(t.decode(streams.vp8![2]!)).rejects.toThrow(ClosedError);
		await expect(t.encode({ pts90k: 3000, keyframe: false })).rejects.toThrow(ClosedError);
		expect(t.hasPicture).toBe(false);
	});

	it('during an encode in flight: the encode returns its picture, nothing crashes', async () => {
		const t = await transcoder('VP8', output('VP8'));
		await t.decode(streams.vp8![0]!);
		const encoding = t.encode({ pts90k: 0, keyframe: false });
		await Promise.resolve();
		t.close();
		const pictures = await encoding;
		expect(pictures.length).toBeLessThanOrEqual(1);
		await expect(t.decode(streams.vp8![1]!)).rejects.toThrow(ClosedError);
	});
});

describe('cost per 1280x720 picture (printed, not asserted: the machine is shared)', () => {
	it('VP8 -> VP8 and H264 -> H264 at effort 0, 1 and 2', async () => {
		const frames = 11;
		for (const codec of ['VP8', 'H264'] as const) {
			const input = await makeStream(codec, 1280, 720, frames * 3, [0, frames, 2 * frames]);
			for (const effort of [0, 1, 2] as const) {
				const t = await transcoder(codec, output(codec, 1280, 720, { bitrateKbps: 2500, threads: 2 }));
				t.setEffort(effort);
				const slice = input.slice(effort * frames, (effort + 1) * frames);
				// The first picture (encoder reopened for the effort, a keyframe) is left out of the mean.
				await transcodeAll(t, slice.slice(0, 1));
				const before = t.stats;
				const pictures = await transcodeAll(t, slice.slice(1), [], FRAME_90K);
				expect(pictures).toHaveLength(frames - 1);
				const decodeMs = (t.stats.decodeMs - before.decodeMs) / (frames - 1);
				const encodeMs = (t.stats.encodeMs - before.encodeMs) / (frames - 1);
				console.log(
					`[timing, shared machine] ${codec} 1280x720 effort ${effort} (output ${t.outputSize.width}x${t.outputSize.height}): decode ${decodeMs.toFixed(1)} + encode ${encodeMs.toFixed(1)} = ${(decodeMs + encodeMs).toFixed(1)} ms per picture (mean of ${frames - 1} delta pictures)`,
				);
				t.close();
			}
		}
	});
});

describe('a simulcast ladder: one decode, one encoder per rendition', () => {
	it('encodes each layer at its own size, with keyframes per layer where asked; every layer decodes on its own', async () => {
		const t = await VideoTranscoder.create({
			input: 'VP8',
			outputs: [output('VP8', 160, 90, { bitrateKbps: 100 }), output('VP8', 320, 180, { bitrateKbps: 300 }), output('VP8', 640, 360)],
		});
		open.push(t);
		expect(t.layers).toBe(3);
		const perLayer: EncodedPicture[][] = [[], [], []];
		for (const [i, frame] of streams.vp8!.entries()) {
			expect(await t.decode(frame)).toBe('picture');
			for (const layer of [2, 1, 0]) {
				// Layer 1 gets a keyframe at picture 10 on its own; the others do not.
				const pictures = await t.encode({ pts90k: i * FRAME_90K, keyframe: layer === 1 && i === 10, layer });
				expect(pictures).toHaveLength(1);
				perLayer[layer]!.push(...pictures);
			}
		}
		const keyframesAt = perLayer.map((pictures) => pictures.flatMap((p, i) => (p.keyframe ? [i] : [])));
		expect(keyframesAt).toEqual([[0], [0, 10], [0]]);
		for (const [layer, size] of [{ width: 160, height: 90 }, { width: 320, height: 180 }, { width: 640, height: 360 }].entries()) {
			expect(t.outputSizeOf(layer)).toEqual(size);
			const sizes = await decodeAll('VP8', perLayer[layer]!.map((p) => p.data));
			expect(sizes).toHaveLength(30);
			for (const decoded of sizes) expect(decoded).toEqual(size);
		}
	});

	it('refuses a layer that does not exist, and both or neither of output and outputs', async () => {
		const t = await VideoTranscoder.create({ input: 'VP8', outputs: [output('VP8', 160, 90), output('VP8', 320, 180)] });
		open.push(t);
		await expect(t.encode({ pts90k: 1, keyframe: false, layer: 2 })).rejects.toThrow(/layer 2 does not exist/);
		await expect(VideoTranscoder.create({ input: 'VP8' })).rejects.toThrow(InvalidOptionError);
		await expect(VideoTranscoder.create({ input: 'VP8', output: output('VP8'), outputs: [output('VP8')] })).rejects.toThrow(InvalidOptionError);
		await expect(VideoTranscoder.create({ input: 'VP8', outputs: [] })).rejects.toThrow(/1 to 8 renditions/);
	});
});
