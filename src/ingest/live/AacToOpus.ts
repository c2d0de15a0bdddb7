/**
 * AAC to Opus for the RTMP and SRT ingest: WebRTC viewers take Opus, and
 * broadcast encoders send AAC. One per publisher session (its
 * AudioSpecificConfig fixes the decoder): AAC decoded by libavcodec (node-av),
 * resampled to 48 kHz stereo, cut into 20 ms frames and encoded by libopus.
 * Native calls run in libuv's thread pool, one at a time; a frame that does not
 * decode gives no output and is counted, never thrown.
 */
import { Codec, CodecContext, Dictionary, FFmpegError, Frame, Packet, Rational, SoftwareResampleContext } from 'node-av/lib';
import { AV_CHANNEL_LAYOUT_STEREO, AV_CODEC_ID_AAC, AV_SAMPLE_FMT_FLT, AVERROR_EAGAIN, FF_ENCODER_LIBOPUS } from 'node-av/constants';
import { EngineError } from '../../errors.js';

const SAMPLE_RATE = 48_000;
const CHANNELS = 2;
/** 20 ms at 48 kHz: what WebRTC receivers expect. */
export const OPUS_FRAME_SAMPLES = 960;
const PENDING_CAPACITY = SAMPLE_RATE;

export interface AacToOpusStats {
	framesIn: number;
	packetsOut: number;
	decodeErrors: number;
}

export class AacToOpus {
	readonly #decoder = new CodecContext();
	readonly #encoder = new CodecContext();
	readonly #resampler = new SoftwareResampleContext();
	readonly #packet = new Packet();
	readonly #decoded = new Frame();
	readonly #resampled = new Frame();
	readonly #toEncode = new Frame();
	readonly #pending = new Float32Array(PENDING_CAPACITY * CHANNELS);
	#pendingSamples = 0;
	#pts = 0n;
	#resamplerReady = false;
	#tail: Promise<unknown> = Promise.resolve();
	#inFlight = false;
	#closed = false;
	#freed = false;
	readonly #stats: AacToOpusStats = { framesIn: 0, packetsOut: 0, decodeErrors: 0 };

	/** Opens the decoder for `config` (an AudioSpecificConfig) and the Opus encoder at `bitrateKbps`. */
	static async create({ config, bitrateKbps }: { config: Buffer; bitrateKbps: number }): Promise<AacToOpus> {
		const transcoder = new AacToOpus();
		try {
			await transcoder.#open(config, bitrateKbps);
		} catch (error) {
			transcoder.close();
			throw error;
		}
		return transcoder;
	}

	private constructor() {
		this.#packet.alloc();
		this.#decoded.alloc();
		this.#resampled.alloc();
		this.#toEncode.alloc();
	}

	get stats(): AacToOpusStats {
		return { ...this.#stats };
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** One raw AAC frame in, zero or more 20 ms stereo Opus packets out (none once closed). */
	transcode(frame: Buffer): Promise<Buffer[]> {
		const result = this.#tail.then(async () => {
			if (this.#closed) return [];
			this.#inFlight = true;
			try {
				return await this.#transcode(frame);
			} finally {
				this.#inFlight = false;
				if (this.#closed) this.#free();
			}
		});
		this.#tail = result.catch(() => undefined);
		return result;
	}

	/** Idempotent. Frees the native objects now, or when the call in flight returns. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		if (!this.#inFlight) this.#free();
	}

	async #transcode(data: Buffer): Promise<Buffer[]> {
		this.#stats.framesIn++;
		if (data.length === 0 || !(await this.#decode(data))) {
			this.#stats.decodeErrors++;
			return [];
		}
		const out: Buffer[] = [];
		while (this.#pendingSamples >= OPUS_FRAME_SAMPLES) out.push(...(await this.#encodeOneFrame()));
		this.#stats.packetsOut += out.length;
		return out;
	}

	async #decode(data: Buffer): Promise<boolean> {
		this.#packet.data = data;
		const sent = await this.#decoder.sendPacket(this.#packet);
		this.#packet.unref();
		if (sent < 0) return false;
		for (;;) {
			const received = await this.#decoder.receiveFrame(this.#decoded);
			if (received === AVERROR_EAGAIN) return true;
			if (received < 0) return false;
			try {
				this.#resample(this.#decoded);
			} finally {
				this.#decoded.unref();
			}
		}
	}

	/** Converts a decoded frame to 48 kHz interleaved stereo float and appends it to the pending samples. */
	#resample(frame: Frame): void {
		if (!this.#resamplerReady) {
			FFmpegError.throwIfError(
				this.#resampler.allocSetOpts2(AV_CHANNEL_LAYOUT_STEREO, AV_SAMPLE_FMT_FLT, SAMPLE_RATE, frame.channelLayout, frame.format as never, frame.sampleRate),
				'set up the audio resampler',
			);
			FFmpegError.throwIfError(this.#resampler.init(), 'open the audio resampler');
			this.#resamplerReady = true;
		}
		const out = this.#resampled;
		out.unref();
		out.format = AV_SAMPLE_FMT_FLT;
		out.sampleRate = SAMPLE_RATE;
		out.channelLayout = AV_CHANNEL_LAYOUT_STEREO;
		FFmpegError.throwIfError(this.#resampler.convertFrame(out, frame), 'resample audio');
		const samples = Math.min(out.nbSamples, PENDING_CAPACITY - this.#pendingSamples);
		const plane = out.data?.[0];
		if (!plane || samples <= 0) return;
		const view = new Float32Array(plane.buffer, plane.byteOffset, samples * CHANNELS);
		this.#pending.set(view, this.#pendingSamples * CHANNELS);
		this.#pendingSamples += samples;
	}

	async #encodeOneFrame(): Promise<Buffer[]> {
		const frame = this.#toEncode;
		FFmpegError.throwIfError(frame.makeWritable(), 'make the audio frame writable');
		const bytes = OPUS_FRAME_SAMPLES * CHANNELS * 4;
		Buffer.from(this.#pending.buffer, 0, bytes).copy(frame.data![0]!, 0, 0, bytes);
		this.#pending.copyWithin(0, OPUS_FRAME_SAMPLES * CHANNELS, this.#pendingSamples * CHANNELS);
		this.#pendingSamples -= OPUS_FRAME_SAMPLES;
		frame.pts = this.#pts;
		this.#pts += BigInt(OPUS_FRAME_SAMPLES);
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

	async #open(config: Buffer, bitrateKbps: number): Promise<void> {
		const decoderCodec = Codec.findDecoder(AV_CODEC_ID_AAC);
		const encoderCodec = Codec.findEncoderByName(FF_ENCODER_LIBOPUS);
		if (!decoderCodec || !encoderCodec) throw new EngineError('node-av has no AAC decoder or libopus encoder; reinstall node-av');
		this.#decoder.allocContext3(decoderCodec);
		this.#decoder.extraData = config;
		const decoderOpened = await this.#decoder.open2(decoderCodec, null);
		if (decoderOpened < 0) throw new EngineError(`libav could not open the AAC decoder for this stream's AudioSpecificConfig: ${FFmpegError.strerror(decoderOpened)}`);

		this.#encoder.allocContext3(encoderCodec);
		this.#encoder.sampleRate = SAMPLE_RATE;
		this.#encoder.channelLayout = AV_CHANNEL_LAYOUT_STEREO;
		this.#encoder.sampleFormat = AV_SAMPLE_FMT_FLT;
		this.#encoder.timeBase = new Rational(1, SAMPLE_RATE);
		this.#encoder.bitRate = BigInt(Math.round(bitrateKbps * 1000));
		const options = Dictionary.fromObject({ application: 'audio', frame_duration: '20', vbr: 'on' });
		try {
			const opened = await this.#encoder.open2(encoderCodec, options);
			if (opened < 0) throw new EngineError(`libav could not open the libopus encoder: ${FFmpegError.strerror(opened)}`);
		} finally {
			options.free();
		}
		this.#toEncode.nbSamples = OPUS_FRAME_SAMPLES;
		this.#toEncode.format = AV_SAMPLE_FMT_FLT;
		this.#toEncode.sampleRate = SAMPLE_RATE;
		this.#toEncode.channelLayout = AV_CHANNEL_LAYOUT_STEREO;
		FFmpegError.throwIfError(this.#toEncode.allocBuffer(), 'allocate an audio frame');
	}

	#free(): void {
		if (this.#freed) return;
		this.#freed = true;
		this.#encoder.freeContext();
		this.#decoder.freeContext();
		this.#resampler.free();
		this.#toEncode.free();
		this.#resampled.free();
		this.#decoded.free();
		this.#packet.free();
	}
}
