/**
 * Decodes a broadcaster's video (VP8 frames or H264 Annex B access units) and
 * encodes it again, one picture in, one picture out per rendition (the layers
 * of a simulcast ladder, each scaled from the one decoded picture by its own
 * encoder), with keyframes exactly where the caller asks for them. Runs inside the libav engine process, on
 * node-av's low-level API: the high-level `Encoder` helper clears a frame's
 * picture type, so it cannot force a keyframe at a given frame.
 *
 * Every native call is async (it runs in libuv's thread pool, so the engine's
 * event loop keeps reading its sockets) and the calls of one transcoder run one
 * at a time, in call order: a decode never overlaps an encode, and `close()`
 * during a call frees the native objects when that call returns.
 */
import { performance } from 'node:perf_hooks';
import { Codec, CodecContext, Dictionary, FFmpegError, Frame, Packet, Rational, SoftwareScaleContext } from 'node-av/lib';
import {
	AV_CODEC_FLAG_LOW_DELAY,
	AV_CODEC_ID_H264,
	AV_CODEC_ID_VP8,
	AV_FRAME_FLAG_CORRUPT,
	AV_PICTURE_TYPE_I,
	AV_PICTURE_TYPE_NONE,
	AV_PIX_FMT_YUV420P,
	AVERROR_EAGAIN,
	FF_ENCODER_LIBVPX_VP8,
	FF_ENCODER_LIBX264,
	FF_THREAD_SLICE,
	SWS_BILINEAR,
} from 'node-av/constants';
import { ClosedError, EngineError, InvalidOptionError } from '../../errors.js';

export type VideoCodec = 'VP8' | 'H264';

export interface VideoOutput {
	codec: VideoCodec;
	/** Output width at effort 0, an even number of pixels. */
	width: number;
	/** Output height at effort 0, an even number of pixels. */
	height: number;
	/** Nominal frame rate, for the encoder's rate control. */
	fps: number;
	bitrateKbps: number;
	/** Decoder slice threads, and x264's slice threads (libvpx VP8 always encodes on one thread: see #openEncoder). */
	threads: number;
}

export interface EncodedPicture {
	/** A VP8 frame, or an H264 Annex B access unit with SPS and PPS before every IDR. */
	data: Buffer;
	keyframe: boolean;
}

/**
 * Encoder effort. 0: normal. 1: cheaper encoder settings at the same bitrate
 * (libvpx cpu-used 16, x264 preset ultrafast). 2: as 1, and half the output
 * width and height. Changing it reopens the encoder, so the next picture is a keyframe.
 */
export type EffortLevel = 0 | 1 | 2;

export interface VideoTranscoderOptions {
	input: VideoCodec;
	/** One rendition. */
	output?: VideoOutput;
	/** Several renditions (a simulcast ladder), each encoded by its own encoder from the one decoded picture; `encode({ layer })` picks one. */
	outputs?: VideoOutput[];
}

export interface VideoTranscoderStats {
	/** Pictures the decoder produced and that became the latest picture. */
	decoded: number;
	/** Frames that failed to decode, or decoded while the stream waited for a keyframe. */
	decodeErrors: number;
	/** Pictures encoded (packets out). */
	encoded: number;
	keyframes: number;
	/** Wall-clock ms spent in decode() and encode() (native work, thread-pool queueing included). */
	decodeMs: number;
	encodeMs: number;
}

/** libvpx cpu-used per effort: 8 is the fastest WebRTC uses, 16 the fastest libvpx has for VP8. */
const VP8_CPU_USED: Record<EffortLevel, number> = { 0: 8, 1: 16, 2: 16 };
/** x264 preset per effort. */
const X264_PRESET: Record<EffortLevel, string> = { 0: 'veryfast', 1: 'ultrafast', 2: 'ultrafast' };
/**
 * Keyframe distance large enough never to be reached: the caller forces every
 * keyframe (on demand and at its own fixed interval). x264's "infinite".
 */
const NO_AUTOMATIC_KEYFRAMES = 1 << 30;

type Size = { width: number; height: number };

/** One rendition's encoder and its scaled copy of the latest picture. */
interface Rendition {
	output: VideoOutput;
	encoder: CodecContext | undefined;
	encoderEffort: EffortLevel;
	forceKeyframe: boolean;
	lastPts: number | undefined;
	scaler: SoftwareScaleContext | undefined;
	scalerKey: string;
	scaled: Frame | undefined;
	scaledKey: string;
}

export class VideoTranscoder {
	readonly #input: VideoCodec;
	readonly #renditions: Rendition[];
	readonly #decoder: CodecContext;
	readonly #packet: Packet;
	/** The latest good decoded picture, and a frame to receive the next one into. */
	#latest: Frame;
	#receiving: Frame;
	#hasPicture = false;
	/** Bumped for every new latest picture, so a scaled copy is made once per picture. */
	#pictureSerial = 0;
	/** After a decode error, pictures are not taken until a keyframe decodes. */
	#awaitingKeyframe = false;

	#effort: EffortLevel = 0;

	readonly #calls = new NativeCallQueue(() => this.#free());
	readonly #stats: VideoTranscoderStats = { decoded: 0, decodeErrors: 0, encoded: 0, keyframes: 0, decodeMs: 0, encodeMs: 0 };

	static async create(options: VideoTranscoderOptions): Promise<VideoTranscoder> {
		validateOptions(options);
		const transcoder = new VideoTranscoder(options);
		try {
			// Opened side by side (each open2 runs in libuv's thread pool): an engine restarting with a
			// ladder is back that much sooner.
			// All settle before a failure closes them (no context is freed while another opens).
			const opened = await Promise.allSettled([transcoder.#openDecoder(), ...transcoder.#renditions.map((rendition) => transcoder.#openEncoder(rendition, 0))]);
			const failed = opened.find((result): result is PromiseRejectedResult => result.status === 'rejected');
			if (failed) throw failed.reason;
		} catch (error) {
			transcoder.close();
			throw error;
		}
		return transcoder;
	}

	private constructor({ input, output, outputs }: VideoTranscoderOptions) {
		this.#input = input;
		this.#renditions = (outputs ?? [output!]).map((o) => ({
			output: { ...o },
			encoder: undefined,
			encoderEffort: 0,
			forceKeyframe: true,
			lastPts: undefined,
			scaler: undefined,
			scalerKey: '',
			scaled: undefined,
			scaledKey: '',
		}));
		this.#decoder = new CodecContext();
		this.#packet = new Packet();
		this.#packet.alloc();
		this.#latest = newFrame();
		this.#receiving = newFrame();
	}

	get closed(): boolean {
		return this.#calls.closed;
	}

	/** True once a picture has been decoded (encode() has something to encode). */
	get hasPicture(): boolean {
		return this.#hasPicture;
	}

	/** True after a decode error until a keyframe decodes: decode() answers 'error' meanwhile. */
	get awaitingKeyframe(): boolean {
		return this.#awaitingKeyframe;
	}

	get effort(): EffortLevel {
		return this.#effort;
	}

	/** The size of the pictures the next encode() of a layer (default the first) makes (half size at effort 2). */
	get outputSize(): Size {
		return this.outputSizeOf(0);
	}

	outputSizeOf(layer: number): Size {
		return outputSizeAt(this.#rendition(layer).output, this.#effort);
	}

	/** Renditions (layers) this transcoder encodes. */
	get layers(): number {
		return this.#renditions.length;
	}

	/** Size of the latest decoded picture. */
	get inputSize(): Size | undefined {
		return this.#hasPicture ? { width: this.#latest.width, height: this.#latest.height } : undefined;
	}

	get stats(): VideoTranscoderStats {
		return { ...this.#stats };
	}

	/**
	 * Decodes one assembled frame. 'picture': a new picture is now the latest;
	 * 'none': no picture out (decoder buffering, or H264 before its first IDR);
	 * 'error': decoding failed (corrupt data or a missing reference) and the
	 * transcoder now waits for a keyframe, answering 'error' for every picture
	 * until one decodes. Bad data never throws; a call after close() does.
	 * Give whole frames only: FFmpeg's VP8 decoder cannot see a frame cut short
	 * in its last partition (its size is implied) and decodes it as a picture.
	 */
	decode(frame: Buffer): Promise<'picture' | 'none' | 'error'> {
		if (this.#calls.closed) return Promise.reject(new ClosedError('VideoTranscoder'));
		return this.#calls.run('none', () => this.#decode(frame));
	}

	/**
	 * Encodes the latest decoded picture (the same one again when none was
	 * decoded since: repeating the last good picture), scaled to the output
	 * size. `pts90k`: 90 kHz timestamp of this output picture, strictly
	 * increasing per layer. `keyframe`: make this picture a keyframe (the first
	 * picture, and the first after an effort change, are keyframes anyway).
	 * `layer`: which rendition (default 0). Returns one picture, or none if no
	 * picture was ever decoded.
	 */
	encode({ pts90k, keyframe, layer = 0 }: { pts90k: number; keyframe: boolean; layer?: number }): Promise<EncodedPicture[]> {
		if (this.#calls.closed) return Promise.reject(new ClosedError('VideoTranscoder'));
		const rendition = this.#renditions[layer];
		if (!rendition) return Promise.reject(new InvalidOptionError(`encode(): layer ${layer} does not exist; layers are 0 to ${this.#renditions.length - 1}`));
		if (!Number.isFinite(pts90k) || (rendition.lastPts !== undefined && pts90k <= rendition.lastPts)) {
			return Promise.reject(
				new InvalidOptionError(`encode(): pts90k ${pts90k} must be a number greater than the last one (${rendition.lastPts})`),
			);
		}
		rendition.lastPts = pts90k;
		if (keyframe) rendition.forceKeyframe = true;
		return this.#calls.run([], () => this.#encode(rendition, pts90k));
	}

	#rendition(layer: number): Rendition {
		const rendition = this.#renditions[layer];
		if (!rendition) throw new InvalidOptionError(`layer ${layer} does not exist; layers are 0 to ${this.#renditions.length - 1}`);
		return rendition;
	}

	/** Takes effect at the next encode(), which reopens the encoder and makes a keyframe. */
	setEffort(level: EffortLevel): void {
		if (level !== 0 && level !== 1 && level !== 2) throw new InvalidOptionError(`effort must be 0, 1 or 2, not ${String(level)}`);
		this.#effort = level;
	}

	/** Idempotent. Frees every native object now, or when the call in flight returns. */
	close(): void {
		this.#calls.close();
	}

	async #decode(data: Buffer): Promise<'picture' | 'none' | 'error'> {
		const started = performance.now();
		try {
			// An empty packet would tell the decoder the stream has ended.
			if (data.length === 0) return this.#decodeFailed();
			this.#packet.data = data;
			const sent = await this.#decoder.sendPacket(this.#packet);
			this.#packet.unref();
			if (sent < 0 && sent !== AVERROR_EAGAIN) return this.#decodeFailed();
			let result: 'picture' | 'none' | 'error' = 'none';
			for (;;) {
				const received = await this.#decoder.receiveFrame(this.#receiving);
				if (received === AVERROR_EAGAIN) break;
				if (received < 0) return this.#decodeFailed();
				result = this.#takePicture();
			}
			return result;
		} finally {
			this.#stats.decodeMs += performance.now() - started;
		}
	}

	#takePicture(): 'picture' | 'error' {
		const frame = this.#receiving;
		const corrupt = frame.hasFlags(AV_FRAME_FLAG_CORRUPT) || frame.decodeErrorFlags !== 0;
		if (corrupt || (this.#awaitingKeyframe && !frame.keyFrame)) {
			frame.unref();
			return this.#decodeFailed();
		}
		this.#awaitingKeyframe = false;
		this.#receiving = this.#latest;
		this.#receiving.unref();
		this.#latest = frame;
		this.#hasPicture = true;
		this.#pictureSerial++;
		this.#stats.decoded++;
		return 'picture';
	}

	#decodeFailed(): 'error' {
		this.#awaitingKeyframe = true;
		this.#stats.decodeErrors++;
		return 'error';
	}

	async #encode(rendition: Rendition, pts90k: number): Promise<EncodedPicture[]> {
		if (!this.#hasPicture) return [];
		const started = performance.now();
		const { output } = rendition;
		try {
			if (rendition.encoderEffort !== this.#effort || !rendition.encoder) await this.#openEncoder(rendition, this.#effort);
			const encoder = rendition.encoder!;
			const picture = await this.#pictureForEncoder(rendition);
			picture.pts = BigInt(Math.round(pts90k));
			picture.duration = BigInt(Math.round(90_000 / output.fps));
			picture.pictType = rendition.forceKeyframe ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
			rendition.forceKeyframe = false;
			FFmpegError.throwIfError(await encoder.sendFrame(picture), `${output.codec} encoder: send a picture`);
			const pictures: EncodedPicture[] = [];
			for (;;) {
				const received = await encoder.receivePacket(this.#packet);
				if (received === AVERROR_EAGAIN) break;
				FFmpegError.throwIfError(received, `${output.codec} encoder: receive a packet`);
				const keyframe = this.#packet.isKeyframe;
				pictures.push({ data: Buffer.from(this.#packet.data!), keyframe });
				this.#packet.unref();
				this.#stats.encoded++;
				if (keyframe) this.#stats.keyframes++;
			}
			return pictures;
		} finally {
			this.#stats.encodeMs += performance.now() - started;
		}
	}

	/** The latest picture at a rendition's size in yuv420p: itself when it already is, else a scaled copy made once per picture. */
	async #pictureForEncoder(rendition: Rendition): Promise<Frame> {
		const source = this.#latest;
		const { width, height } = outputSizeAt(rendition.output, rendition.encoderEffort);
		if (source.format === AV_PIX_FMT_YUV420P && source.width === width && source.height === height) return source;
		const scaledKey = `${this.#pictureSerial} ${width}x${height}`;
		if (rendition.scaled && rendition.scaledKey === scaledKey) return rendition.scaled;

		// Rebuilt when the input size or format, or the output size, changes.
		const scalerKey = `${source.width}x${source.height}/${source.format} ${width}x${height}`;
		if (!rendition.scaler || rendition.scalerKey !== scalerKey) {
			rendition.scaler?.freeContext();
			rendition.scaler = new SoftwareScaleContext();
			rendition.scaler.getContext(source.width, source.height, source.format as never, width, height, AV_PIX_FMT_YUV420P, SWS_BILINEAR);
			rendition.scalerKey = scalerKey;
		}
		if (!rendition.scaled || rendition.scaled.width !== width || rendition.scaled.height !== height) {
			rendition.scaled?.free();
			rendition.scaled = newFrame();
			rendition.scaled.width = width;
			rendition.scaled.height = height;
			rendition.scaled.format = AV_PIX_FMT_YUV420P;
			FFmpegError.throwIfError(rendition.scaled.allocBuffer(), 'allocate a scaled picture');
		} else {
			// The encoder may still hold a reference to the last scaled picture.
			FFmpegError.throwIfError(rendition.scaled.makeWritable(), 'make the scaled picture writable');
		}
		rendition.scaledKey = '';
		FFmpegError.throwIfError(await rendition.scaler.scaleFrame(rendition.scaled, source), 'scale a picture');
		rendition.scaledKey = scaledKey;
		return rendition.scaled;
	}

	async #openDecoder(): Promise<void> {
		const codec = Codec.findDecoder(this.#input === 'VP8' ? AV_CODEC_ID_VP8 : AV_CODEC_ID_H264);
		if (!codec) throw new EngineError(`node-av has no ${this.#input} decoder; reinstall node-av`);
		this.#decoder.allocContext3(codec);
		// Slice threads only: frame threads would hold pictures back, one frame per thread.
		this.#decoder.threadCount = this.#renditions[0]!.output.threads;
		this.#decoder.threadType = FF_THREAD_SLICE;
		// H264: output each picture at once instead of guessing a reorder delay.
		this.#decoder.setFlags(AV_CODEC_FLAG_LOW_DELAY);
		const opened = await this.#decoder.open2(codec, null);
		if (opened < 0) throw libavError(`open the ${this.#input} decoder`, opened);
	}

	/** (Re)opens a rendition's encoder for an effort; its first picture will be a keyframe. */
	async #openEncoder(rendition: Rendition, effort: EffortLevel): Promise<void> {
		rendition.encoder?.freeContext();
		rendition.encoder = undefined;
		const { codec: codecName, fps, bitrateKbps, threads } = rendition.output;
		const { width, height } = outputSizeAt(rendition.output, effort);
		const codec = Codec.findEncoderByName(codecName === 'VP8' ? FF_ENCODER_LIBVPX_VP8 : FF_ENCODER_LIBX264);
		if (!codec) throw new EngineError(`node-av has no ${codecName} encoder; reinstall node-av`);
		const encoder = new CodecContext();
		encoder.allocContext3(codec);
		encoder.width = width;
		encoder.height = height;
		encoder.pixelFormat = AV_PIX_FMT_YUV420P;
		encoder.timeBase = new Rational(1, 90_000);
		encoder.framerate = new Rational(Math.round(fps * 1000), 1000);
		encoder.gopSize = NO_AUTOMATIC_KEYFRAMES;
		encoder.maxBFrames = 0;
		// libvpx's VP8 threads wait for each other by spinning: on a busy machine (2 cores shared
		// with another encoder) a 720p picture measured 5 ms or 150-450 ms at random with 2 threads,
		// a steady 6-11 ms with 1. So VP8 encodes on one thread; x264's slice threads block instead.
		encoder.threadCount = codecName === 'VP8' ? 1 : threads;
		// Constant bitrate with a one-second buffer, as real-time senders do.
		const bitRate = BigInt(Math.round(bitrateKbps * 1000));
		encoder.bitRate = bitRate;
		encoder.rcMaxRate = bitRate;
		encoder.rcBufferSize = Math.round(bitrateKbps * 1000);
		let options: Record<string, string>;
		if (codecName === 'VP8') {
			encoder.rcMinRate = bitRate;
			// Minimum keyframe distance as large as the maximum: libvpx places no keyframe of its own (scene cuts).
			encoder.setOption('keyint_min', NO_AUTOMATIC_KEYFRAMES);
			options = {
				deadline: 'realtime',
				'cpu-used': String(VP8_CPU_USED[effort]),
				'lag-in-frames': '0',
				'auto-alt-ref': '0',
				'error-resilient': 'default',
				// A keyframe at most 3 frames' worth of bits (WebRTC's cap), so a forced one does not burst.
				'max-intra-rate': '300',
				'noise-sensitivity': '0',
			};
		} else {
			options = {
				preset: X264_PRESET[effort],
				tune: 'zerolatency',
				// Constrained Baseline (x264 sets constraint_set1), the relay's profile-level-id 42e01f.
				profile: 'baseline',
				// A picture marked I becomes an IDR, with SPS and PPS in band before it.
				'forced-idr': '1',
				'x264-params': 'repeat-headers=1:annexb=1:scenecut=0:rc-lookahead=0:sync-lookahead=0:bframes=0',
			};
		}
		const dictionary = Dictionary.fromObject(options);
		try {
			const opened = await encoder.open2(codec, dictionary);
			if (opened < 0) {
				encoder.freeContext();
				throw libavError(`open the ${codecName} encoder at ${width}x${height}`, opened);
			}
		} finally {
			dictionary.free();
		}
		rendition.encoder = encoder;
		rendition.encoderEffort = effort;
		rendition.forceKeyframe = true;
	}

	#free(): void {
		for (const rendition of this.#renditions) {
			rendition.encoder?.freeContext();
			rendition.encoder = undefined;
			rendition.scaler?.freeContext();
			rendition.scaler = undefined;
			rendition.scaled?.free();
			rendition.scaled = undefined;
		}
		this.#decoder.freeContext();
		this.#latest.free();
		this.#receiving.free();
		this.#packet.free();
		this.#hasPicture = false;
	}
}

/**
 * Runs a native object's async calls one at a time, in call order (node-av
 * contexts must not see two calls at once), and frees the objects on close():
 * at once when idle, else when the call in flight returns. Calls still queued
 * at close() resolve to their `skipped` value without running.
 */
export class NativeCallQueue {
	readonly #free: () => void;
	#tail: Promise<unknown> = Promise.resolve();
	#inFlight = false;
	#closed = false;
	#freed = false;

	constructor(free: () => void) {
		this.#free = free;
	}

	get closed(): boolean {
		return this.#closed;
	}

	run<T>(skipped: T, work: () => Promise<T>): Promise<T> {
		const result = this.#tail.then(async () => {
			if (this.#closed) return skipped;
			this.#inFlight = true;
			try {
				return await work();
			} finally {
				this.#inFlight = false;
				if (this.#closed) this.#freeOnce();
			}
		});
		this.#tail = result.catch(() => undefined);
		return result;
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		if (!this.#inFlight) this.#freeOnce();
	}

	#freeOnce(): void {
		if (this.#freed) return;
		this.#freed = true;
		this.#free();
	}
}

/** Output size at an effort: half (rounded down to even) at effort 2. */
export function outputSizeAt(output: Size, effort: EffortLevel): Size {
	if (effort < 2) return { width: output.width, height: output.height };
	return { width: Math.max(2, Math.floor(output.width / 4) * 2), height: Math.max(2, Math.floor(output.height / 4) * 2) };
}

function newFrame(): Frame {
	const frame = new Frame();
	frame.alloc();
	return frame;
}

/** A native call that failed, as a EngineError with FFmpeg's reason. */
export function libavError(what: string, code: number): EngineError {
	return new EngineError(`libav could not ${what}: ${FFmpegError.strerror(code)} (${code})`);
}

function validateOptions(options: VideoTranscoderOptions): void {
	const { input, output, outputs } = options ?? {};
	if (input !== 'VP8' && input !== 'H264') throw new InvalidOptionError(`input must be 'VP8' or 'H264', not ${String(input)}`);
	if ((output === undefined) === (outputs === undefined)) throw new InvalidOptionError('give either output (one rendition) or outputs (a ladder), not both or neither');
	if (outputs !== undefined && (!Array.isArray(outputs) || outputs.length === 0 || outputs.length > 8)) {
		throw new InvalidOptionError(`outputs must list 1 to 8 renditions, not ${Array.isArray(outputs) ? outputs.length : String(outputs)}`);
	}
	for (const rendition of outputs ?? [output!]) validateOutput(rendition);
}

function validateOutput(output: VideoOutput): void {
	if (!output || (output.codec !== 'VP8' && output.codec !== 'H264')) {
		throw new InvalidOptionError(`output.codec must be 'VP8' or 'H264', not ${String(output?.codec)}`);
	}
	for (const key of ['width', 'height'] as const) {
		const value = output[key];
		if (!Number.isInteger(value) || value < 2 || value > 8192 || value % 2 !== 0) {
			throw new InvalidOptionError(`output.${key} must be an even number of pixels from 2 to 8192, not ${value}`);
		}
	}
	if (!(output.fps > 0 && output.fps <= 240)) throw new InvalidOptionError(`output.fps must be above 0 and at most 240, not ${output.fps}`);
	if (!(output.bitrateKbps >= 10 && output.bitrateKbps <= 100_000)) {
		throw new InvalidOptionError(`output.bitrateKbps must be from 10 to 100000, not ${output.bitrateKbps}`);
	}
	if (!Number.isInteger(output.threads) || output.threads < 1 || output.threads > 16) {
		throw new InvalidOptionError(`output.threads must be an integer from 1 to 16, not ${output.threads}`);
	}
}
