/**
 * Opus to Opus re-encoding for the libav engine (only when `audio.reencode` is
 * asked; audio passes through otherwise). Decodes each packet to 48 kHz stereo,
 * cuts the samples into 20 ms frames and encodes them with libopus, so any
 * packet duration in (10, 20, 40, 60 ms...) gives 20 ms packets out.
 */
import { performance } from 'node:perf_hooks';
import { Codec, CodecContext, Dictionary, FFmpegError, Frame, Packet, Rational } from 'node-av/lib';
import {
	AV_CHANNEL_LAYOUT_STEREO,
	AV_CODEC_ID_OPUS,
	AV_SAMPLE_FMT_FLT,
	AV_SAMPLE_FMT_FLTP,
	AV_SAMPLE_FMT_S16,
	AV_SAMPLE_FMT_S16P,
	AVERROR_EAGAIN,
	FF_ENCODER_LIBOPUS,
} from 'node-av/constants';
import { ClosedError, EngineError, InvalidOptionError } from '../../errors.js';
import { libavError, NativeCallQueue } from './VideoTranscoder.js';

const SAMPLE_RATE = 48_000;
const CHANNELS = 2;
/** 20 ms at 48 kHz: what WebRTC receivers expect. */
const FRAME_SAMPLES = 960;
/** Decoded samples waiting for a full frame: far more than one packet (at most 120 ms) leaves. */
const PENDING_CAPACITY = SAMPLE_RATE;

export interface AudioTranscoderOptions {
	/** Opus bitrate. */
	bitrateKbps: number;
}

export interface AudioTranscoderStats {
	packetsIn: number;
	packetsOut: number;
	/** Packets the decoder refused (corrupt data); they give no output. */
	decodeErrors: number;
	/** Wall-clock ms spent in transcode() (native work, thread-pool queueing included). */
	transcodeMs: number;
}

export class AudioTranscoder {
	readonly #decoder = new CodecContext();
	readonly #encoder = new CodecContext();
	readonly #packet = new Packet();
	readonly #decoded = new Frame();
	readonly #toEncode = new Frame();
	/** Interleaved stereo float samples decoded and not yet encoded. */
	readonly #pending = new Float32Array(PENDING_CAPACITY * CHANNELS);
	#pendingSamples = 0;
	#pts = 0n;
	readonly #calls = new NativeCallQueue(() => this.#free());
	readonly #stats: AudioTranscoderStats = { packetsIn: 0, packetsOut: 0, decodeErrors: 0, transcodeMs: 0 };

	static async create({ bitrateKbps }: AudioTranscoderOptions): Promise<AudioTranscoder> {
		if (!(bitrateKbps >= 6 && bitrateKbps <= 510)) {
			throw new InvalidOptionError(`audio bitrateKbps must be from 6 to 510 (Opus's range), not ${bitrateKbps}`);
		}
		const transcoder = new AudioTranscoder();
		try {
			await transcoder.#open(bitrateKbps);
		} catch (error) {
			transcoder.close();
			throw error;
		}
		return transcoder;
	}

	private constructor() {
		this.#packet.alloc();
		this.#decoded.alloc();
		this.#toEncode.alloc();
	}

	get closed(): boolean {
		return this.#calls.closed;
	}

	get stats(): AudioTranscoderStats {
		return { ...this.#stats };
	}

	/**
	 * One Opus packet in (48 kHz, stereo or mono, any duration), zero or more
	 * 20 ms stereo Opus packets out. A packet that does not decode gives none;
	 * bad data never throws, a call after close() does.
	 */
	transcode(packet: Buffer): Promise<Buffer[]> {
		if (this.#calls.closed) return Promise.reject(new ClosedError('AudioTranscoder'));
		return this.#calls.run([], () => this.#transcode(packet));
	}

	/** Idempotent. Frees every native object now, or when the call in flight returns. */
	close(): void {
		this.#calls.close();
	}

	async #transcode(data: Buffer): Promise<Buffer[]> {
		const started = performance.now();
		this.#stats.packetsIn++;
		try {
			// An empty packet would tell the decoder the stream has ended.
			if (data.length === 0 || !(await this.#decode(data))) {
				this.#stats.decodeErrors++;
				return [];
			}
			const out: Buffer[] = [];
			while (this.#pendingSamples >= FRAME_SAMPLES) out.push(...(await this.#encodeOneFrame()));
			this.#stats.packetsOut += out.length;
			return out;
		} finally {
			this.#stats.transcodeMs += performance.now() - started;
		}
	}

	/** Decodes a packet into the pending samples; false if the decoder refused it. */
	async #decode(data: Buffer): Promise<boolean> {
		this.#packet.data = data;
		const sent = await this.#decoder.sendPacket(this.#packet);
		this.#packet.unref();
		if (sent < 0) return false;
		for (;;) {
			const received = await this.#decoder.receiveFrame(this.#decoded);
			if (received === AVERROR_EAGAIN) return true;
			if (received < 0) return false;
			this.#appendPending(this.#decoded);
			this.#decoded.unref();
		}
	}

	#appendPending(frame: Frame): void {
		const samples = Math.min(frame.nbSamples, PENDING_CAPACITY - this.#pendingSamples);
		const channels = frame.channelLayout.nbChannels;
		const planes = frame.data ?? [];
		const format = frame.format;
		const planar = format === AV_SAMPLE_FMT_FLTP || format === AV_SAMPLE_FMT_S16P;
		const float = format === AV_SAMPLE_FMT_FLTP || format === AV_SAMPLE_FMT_FLT;
		if (!float && format !== AV_SAMPLE_FMT_S16 && format !== AV_SAMPLE_FMT_S16P) {
			throw new EngineError(`the Opus decoder gave sample format ${format}, which the audio transcoder does not read`);
		}
		const read = (channel: number, i: number): number => {
			const plane = planes[planar ? channel : 0]!;
			const index = planar ? i : i * channels + channel;
			return float ? plane.readFloatLE(index * 4) : plane.readInt16LE(index * 2) / 32768;
		};
		const base = this.#pendingSamples * CHANNELS;
		for (let i = 0; i < samples; i++) {
			const left = read(0, i);
			// Mono is sent to both channels.
			this.#pending[base + i * CHANNELS] = left;
			this.#pending[base + i * CHANNELS + 1] = channels > 1 ? read(1, i) : left;
		}
		this.#pendingSamples += samples;
	}

	async #encodeOneFrame(): Promise<Buffer[]> {
		const frame = this.#toEncode;
		FFmpegError.throwIfError(frame.makeWritable(), 'make the audio frame writable');
		const target = frame.data![0]!;
		const bytes = FRAME_SAMPLES * CHANNELS * 4;
		Buffer.from(this.#pending.buffer, 0, bytes).copy(target, 0, 0, bytes);
		this.#pending.copyWithin(0, FRAME_SAMPLES * CHANNELS, this.#pendingSamples * CHANNELS);
		this.#pendingSamples -= FRAME_SAMPLES;
		frame.pts = this.#pts;
		this.#pts += BigInt(FRAME_SAMPLES);
		FFmpegError.throwIfError(await this.#encoder.sendFrame(frame), 'Opus encoder: send a frame');
		const out: Buffer[] = [];
		for (;;) {
			const received = await this.#encoder.receivePacket(this.#packet);
			if (received === AVERROR_EAGAIN) return out;
			FFmpegError.throwIfError(received, 'Opus encoder: receive a packet');
			out.push(Buffer.from(this.#packet.data!));
			this.#packet.unref();
		}
	}

	async #open(bitrateKbps: number): Promise<void> {
		const decoderCodec = Codec.findDecoder(AV_CODEC_ID_OPUS);
		const encoderCodec = Codec.findEncoderByName(FF_ENCODER_LIBOPUS);
		if (!decoderCodec || !encoderCodec) throw new EngineError('node-av has no Opus decoder or libopus encoder; reinstall node-av');
		this.#decoder.allocContext3(decoderCodec);
		// WebRTC's Opus is always "opus/48000/2"; mono packets decode to both channels.
		this.#decoder.sampleRate = SAMPLE_RATE;
		this.#decoder.channelLayout = AV_CHANNEL_LAYOUT_STEREO;
		const decoderOpened = await this.#decoder.open2(decoderCodec, null);
		if (decoderOpened < 0) throw libavError('open the Opus decoder', decoderOpened);

		this.#encoder.allocContext3(encoderCodec);
		this.#encoder.sampleRate = SAMPLE_RATE;
		this.#encoder.channelLayout = AV_CHANNEL_LAYOUT_STEREO;
		this.#encoder.sampleFormat = AV_SAMPLE_FMT_FLT;
		this.#encoder.timeBase = new Rational(1, SAMPLE_RATE);
		this.#encoder.bitRate = BigInt(Math.round(bitrateKbps * 1000));
		const options = Dictionary.fromObject({ application: 'audio', frame_duration: '20', vbr: 'on' });
		try {
			const encoderOpened = await this.#encoder.open2(encoderCodec, options);
			if (encoderOpened < 0) throw libavError('open the libopus encoder', encoderOpened);
		} finally {
			options.free();
		}

		this.#toEncode.nbSamples = FRAME_SAMPLES;
		this.#toEncode.format = AV_SAMPLE_FMT_FLT;
		this.#toEncode.sampleRate = SAMPLE_RATE;
		this.#toEncode.channelLayout = AV_CHANNEL_LAYOUT_STEREO;
		FFmpegError.throwIfError(this.#toEncode.allocBuffer(), 'allocate an audio frame');
	}

	#free(): void {
		this.#encoder.freeContext();
		this.#decoder.freeContext();
		this.#toEncode.free();
		this.#decoded.free();
		this.#packet.free();
	}
}
