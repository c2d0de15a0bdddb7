/**
 * AudioTranscoder on real node-av: Opus input is made here with libopus (a
 * tone, in packets of several durations, stereo and mono) and the output is
 * decoded again with a fresh decoder.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Codec, CodecContext, Dictionary, Frame, Packet, Rational } from 'node-av/lib';
import {
	AV_CHANNEL_LAYOUT_MONO,
	AV_CHANNEL_LAYOUT_STEREO,
	AV_CODEC_ID_OPUS,
	AV_SAMPLE_FMT_FLT,
	AVERROR_EAGAIN,
	FF_ENCODER_LIBOPUS,
} from 'node-av/constants';
import { AudioTranscoder } from '../../src/reencoder/libav/AudioTranscoder.js';
import { ClosedError, InvalidOptionError } from '../../src/errors.js';

const TONE_HZ = 440;

/** `ms` of a 440 Hz tone as Opus packets of `packetMs` each. */
async function makeOpus(ms: number, packetMs: number, channels: 1 | 2): Promise<Buffer[]> {
	const codec = Codec.findEncoderByName(FF_ENCODER_LIBOPUS)!;
	const encoder = new CodecContext();
	encoder.allocContext3(codec);
	encoder.sampleRate = 48_000;
	encoder.channelLayout = channels === 2 ? AV_CHANNEL_LAYOUT_STEREO : AV_CHANNEL_LAYOUT_MONO;
	encoder.sampleFormat = AV_SAMPLE_FMT_FLT;
	encoder.timeBase = new Rational(1, 48_000);
	encoder.bitRate = 64_000n;
	const options = Dictionary.fromObject({ frame_duration: String(packetMs) });
	expect(await encoder.open2(codec, options)).toBe(0);
	options.free();
	const samplesPerPacket = (48_000 * packetMs) / 1000;
	const packet = new Packet();
	packet.alloc();
	const out: Buffer[] = [];
	for (let n = 0; n < ms / packetMs; n++) {
		const pcm = Buffer.alloc(samplesPerPacket * channels * 4);
		for (let i = 0; i < samplesPerPacket; i++) {
			const t = (n * samplesPerPacket + i) / 48_000;
			for (let c = 0; c < channels; c++) pcm.writeFloatLE(0.5 * Math.sin(2 * Math.PI * TONE_HZ * t), (i * channels + c) * 4);
		}
		const frame = Frame.fromAudioBuffer(pcm, {
			nbSamples: samplesPerPacket,
			format: AV_SAMPLE_FMT_FLT,
			sampleRate: 48_000,
			channelLayout: encoder.channelLayout,
			pts: BigInt(n * samplesPerPacket),
		});
		expect(await encoder.sendFrame(frame)).toBe(0);
		frame.free();
		while ((await encoder.receivePacket(packet)) === 0) {
			out.push(Buffer.from(packet.data!));
			packet.unref();
		}
	}
	packet.free();
	encoder.freeContext();
	return out;
}

/** Decodes Opus packets with a fresh decoder: samples per packet, channels, and the RMS level after the first 100 ms. */
async function decodeOpus(packets: Buffer[]): Promise<{ samples: number[]; channels: number[]; rms: number }> {
	const codec = Codec.findDecoder(AV_CODEC_ID_OPUS)!;
	const decoder = new CodecContext();
	decoder.allocContext3(codec);
	decoder.sampleRate = 48_000;
	decoder.channelLayout = AV_CHANNEL_LAYOUT_STEREO;
	expect(await decoder.open2(codec, null)).toBe(0);
	const packet = new Packet();
	packet.alloc();
	const frame = new Frame();
	frame.alloc();
	const samples: number[] = [];
	const channels: number[] = [];
	let sum = 0;
	let count = 0;
	let total = 0;
	for (const data of packets) {
		packet.data = data;
		expect(await decoder.sendPacket(packet)).toBe(0);
		packet.unref();
		for (;;) {
			const received = await decoder.receiveFrame(frame);
			if (received === AVERROR_EAGAIN) break;
			expect(received).toBe(0);
			samples.push(frame.nbSamples);
			channels.push(frame.channelLayout.nbChannels);
			const left = frame.data![0]!; // planar float: the left channel
			for (let i = 0; i < frame.nbSamples; i++, total++) {
				if (total < 4800) continue;
				const value = left.readFloatLE(i * 4);
				sum += value * value;
				count++;
			}
			frame.unref();
		}
	}
	frame.free();
	packet.free();
	decoder.freeContext();
	return { samples, channels, rms: Math.sqrt(sum / Math.max(1, count)) };
}

const open: AudioTranscoder[] = [];
async function transcoder(bitrateKbps = 64): Promise<AudioTranscoder> {
	const t = await AudioTranscoder.create({ bitrateKbps });
	open.push(t);
	return t;
}
afterEach(() => {
	for (const t of open.splice(0)) t.close();
});

async function transcodeAll(t: AudioTranscoder, packets: Buffer[]): Promise<Buffer[]> {
	const out: Buffer[] = [];
	for (const packet of packets) out.push(...(await t.transcode(packet)));
	return out;
}

describe('Opus in, 20 ms stereo Opus out', () => {
	for (const [packetMs, channels] of [
		[20, 2],
		[10, 2],
		[60, 2],
		[20, 1],
	] as const) {
		it(`${packetMs} ms ${channels === 2 ? 'stereo' : 'mono'} packets: 1.2 s in gives 60 packets of 20 ms that decode to the tone`, async () => {
			const t = await transcoder();
			const input = await makeOpus(1200, packetMs, channels);
			const out = await transcodeAll(t, input);
			expect(out).toHaveLength(60);
			const decoded = await decodeOpus(out);
			expect(decoded.samples).toEqual(new Array(60).fill(960));
			expect(new Set(decoded.channels)).toEqual(new Set([2]));
			// The input tone has an RMS of 0.35; silence or noise would not.
			expect(decoded.rms).toBeGreaterThan(0.2);
			expect(decoded.rms).toBeLessThan(0.5);
			expect(t.stats).toMatchObject({ packetsIn: input.length, packetsOut: 60, decodeErrors: 0 });
		});
	}
});

describe('bad input', () => {
	it('an empty or corrupt packet gives no output and no throw; the stream goes on', async () => {
		const t = await transcoder();
		const input = await makeOpus(200, 20, 2);
		expect(await transcodeAll(t, input.slice(0, 5))).toHaveLength(5);
		expect(await t.transcode(Buffer.alloc(0))).toEqual([]);
		// TOC byte of a code-3 packet announcing 48 frames, with nothing behind it.
		expect(await t.transcode(Buffer.from([0xff, 0xff]))).toEqual([]);
		expect(await transcodeAll(t, input.slice(5))).toHaveLength(5);
		expect(t.stats.decodeErrors).toBe(2);
	});

	it('a bitrate outside Opus range is refused', async () => {
		await expect(AudioTranscoder.create({ bitrateKbps: 1000 })).rejects.toThrow(InvalidOptionError);
	});
});

describe('close', () => {
	it('is idempotent; a call in flight finishes, later calls reject with ClosedError', async () => {
		const t = await transcoder();
		const input = await makeOpus(60, 20, 2);
		const first = t.transcode(input[0]!);
		const queued = t.transcode(input[1]!);
		await new Promise((resolve) => setImmediate(resolve));
		t.close();
		t.close();
		expect(t.closed).toBe(true);
		expect((await first).length).toBeLessThanOrEqual(1);
		expect(await queued).toEqual([]);
		await expect(t.transcode(input[2]!)).rejects.toThrow(ClosedError);
	});
});
