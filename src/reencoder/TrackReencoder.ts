import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { plainReceiverCapabilities, type CodecName } from '../codecs.js';
import { ProducerClosedError } from '../errors.js';
import { audioReencoderArgs, videoReencoderArgs, type AudioEncoding, type VideoEncoding } from '../ffmpeg/args.js';
import { FfmpegProcess, type FfmpegProgress } from '../ffmpeg/FfmpegProcess.js';
import { ffmpegInputSdp } from '../ffmpeg/inputSdp.js';
import type { Logger } from '../logger.js';
import { plainProducerParameters } from '../producerParameters.js';
import type { FeedPorts, PortPair, PortPool } from '../ports/PortPool.js';
import { feedConnectParams, feedTransportOptions } from '../ffmpeg/inputFeed.js';
import { waitForUdpBind } from '../ports/waitForUdpBind.js';

const LOOPBACK = '127.0.0.1';
/**
 * SIGTERM to SIGKILL, ms. An FFmpeg waiting for input (its source gone, or never
 * come) does not act on SIGTERM, so closing it took the default 2 s, and a
 * pipeline rebuild or a republish waited that long; a live re-encoder has no
 * file to finish, so killing it sooner loses nothing.
 */
const FFMPEG_KILL_TIMEOUT_MS = 300;

export interface TrackReencoderOptions {
	/** The broadcaster's producer, on `sourceRouter`. */
	source: ms.Producer;
	sourceRouter: ms.Router;
	/** Router the re-encoded producer is created on. */
	encoderRouter: ms.Router;
	ffmpegPath: string;
	ports: PortPool;
	/** Video encoding, for a video track. */
	video?: VideoEncoding;
	/** Audio encoding, for an audio track. */
	audio?: AudioEncoding;
	restartBackoff: { initialMs: number; maxMs: number };
	logger: Logger;
}

export interface TrackReencoderStats {
	kind: ms.MediaKind;
	codec: CodecName;
	running: boolean;
	pid?: number;
	restarts: number;
	fps: number;
	bitrateKbps: number;
	speed: number;
	framesEncoded: number;
	/** FFmpeg's RTP input port, on loopback. */
	inputPort: number;
	/** Times FFmpeg's input moved to a fresh port pair because another program took its ports. */
	inputMoves: number;
}

export interface TrackReencoderEvents {
	/** FFmpeg was restarted after dying; `attempt` counts restarts since the last healthy minute. */
	restarted: [{ restarts: number; pid: number | undefined }];
}

/**
 * One track through FFmpeg: a paused PlainTransport consumer of the broadcaster's
 * producer feeds FFmpeg, FFmpeg re-encodes with its own keyframes, and its RTP
 * comes back on a comedia PlainTransport of the encoder router where it becomes
 * the re-encoded producer. Keyframe requests of everyone downstream end at that
 * producer; upstream sees only this consumer's.
 *
 * If FFmpeg dies it is restarted with backoff on the same ports, SSRC and
 * producer, so downstream consumers are untouched.
 */
export class TrackReencoder extends EventEmitter<TrackReencoderEvents> {
	readonly #options: TrackReencoderOptions;
	readonly #logger: Logger;
	readonly #abort = new AbortController();
	readonly #ssrc = randomInt(1, 2 ** 31);
	/** Sequence number of this re-encoder's first packet; later runs continue from it. */
	readonly #firstSeq = randomInt(0, 65536);
	#nextSeq = this.#firstSeq;
	#inputPorts?: FeedPorts;
	#outputPorts?: PortPair;
	#consumerTransport?: ms.PlainTransport;
	#consumer?: ms.Consumer;
	#producerTransport?: ms.PlainTransport;
	#producer?: ms.Producer;
	#ffmpeg?: FfmpegProcess;
	#restartLoop?: Promise<void>;
	#restarts = 0;
	/** Times FFmpeg's input moved to a fresh port pair because another program took it. */
	#feedMoves = 0;
	#lastKeyframeRequest = 0;
	#progress: FfmpegProgress = { frame: 0, fps: 0, bitrateKbps: 0, speed: 0, dropFrames: 0, dupFrames: 0 };
	#closed = false;

	private constructor(options: TrackReencoderOptions) {
		super();
		this.#options = options;
		this.#logger = options.logger.child({ module: 'TrackReencoder', kind: options.source.kind });
	}

	/** Builds the pipeline and starts FFmpeg. On failure everything made so far is closed again. */
	static async create(options: TrackReencoderOptions): Promise<TrackReencoder> {
		const reencoder = new TrackReencoder(options);
		try {
			await reencoder.#start();
		} catch (error) {
			await reencoder.close();
			throw error;
		}
		return reencoder;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** The re-encoded producer on the encoder router. */
	get producer(): ms.Producer {
		return this.#producer!;
	}

	/** The consumer of the broadcaster's producer that feeds FFmpeg. */
	get consumer(): ms.Consumer {
		return this.#consumer!;
	}

	get ssrc(): number {
		return this.#ssrc;
	}

	get pid(): number | undefined {
		return this.#ffmpeg?.pid;
	}

	get stats(): TrackReencoderStats {
		return {
			kind: this.#options.source.kind,
			codec: this.#outputCodec(),
			running: Boolean(this.#ffmpeg && !this.#ffmpeg.closed),
			pid: this.#ffmpeg?.closed ? undefined : this.#ffmpeg?.pid,
			restarts: this.#restarts,
			fps: this.#progress.fps,
			bitrateKbps: this.#progress.bitrateKbps,
			speed: this.#progress.speed,
			framesEncoded: this.#progress.frame,
			inputPort: this.#inputPorts?.rtp ?? 0,
			inputMoves: this.#feedMoves,
		};
	}

	#outputCodec(): CodecName {
		return this.#options.video ? this.#options.video.codec : 'opus';
	}

	async #start(): Promise<void> {
		const { source, sourceRouter, encoderRouter, ports } = this.#options;
		if (source.closed) throw new ProducerClosedError(`producer ${source.id} is closed; attach a live producer`);

		this.#inputPorts = await ports.acquireFeed();
		this.#outputPorts = await ports.acquire();
		await this.#openFeedTransport();

		this.#producerTransport = await encoderRouter.createPlainTransport({ listenIp: LOOPBACK, rtcpMux: false, comedia: false });
		// Only FFmpeg's pinned source ports may produce here (comedia would take whoever sends first).
		await this.#producerTransport.connect({ ip: LOOPBACK, port: this.#outputPorts.rtp, rtcpPort: this.#outputPorts.rtcp });
		// PLI and FIR are accepted (and counted) at this producer; FFmpeg ignores them because it keyframes on its own clock.
		this.#producer = await this.#producerTransport.produce({
			kind: source.kind,
			rtpParameters: plainProducerParameters({ codec: this.#outputCodec(), payloadType: source.kind === 'video' ? 96 : 111, ssrc: this.#ssrc }),
			appData: { reencoded: true },
		});

		await this.#spawnFfmpeg();
		await this.#consumer!.resume();
	}

	/** The PlainTransport and paused consumer that send the broadcaster's RTP to FFmpeg's input ports. */
	async #openFeedTransport(): Promise<void> {
		const { source, sourceRouter } = this.#options;
		const transport = await sourceRouter.createPlainTransport(feedTransportOptions(this.#inputPorts!));
		this.#consumerTransport = transport;
		let consumer: ms.Consumer;
		try {
			consumer = await transport.consume({
				producerId: source.id,
				rtpCapabilities: plainReceiverCapabilities(sourceRouter.rtpCapabilities),
				paused: true,
			});
		} catch (error) {
			if (source.closed) throw new ProducerClosedError(`producer ${source.id} closed while the re-encoder attached to it`);
			throw error;
		}
		this.#consumer = consumer;
		consumer.on('producerclose', () => {
			// Its owner (the pipeline) hears of the source closing from the ingest; this only stops FFmpeg early.
			this.#logger.warn('broadcaster producer closed under the re-encoder');
			void this.close();
		});
		await transport.connect(feedConnectParams(this.#inputPorts!));
	}

	/**
	 * Before a restart: if another program took FFmpeg's input ports while FFmpeg was
	 * down (or before it first bound them), FFmpeg would fail to bind them at every
	 * restart, and viewers would never see a frame again. Move the input to a fresh
	 * pair with a new feeding transport; the re-encoded producer, and so every
	 * viewer's consumer, stays as it is.
	 */
	async #moveFeedIfTaken(): Promise<void> {
		const { ports } = this.#options;
		if (!(await ports.stillFree(this.#outputPorts!))) {
			// The re-encoded producer's transport listens to exactly these source ports, so they
			// cannot move without a new producer; say so, and keep retrying until they are freed.
			this.#logger.error({ port: this.#outputPorts!.rtp }, "another program holds FFmpeg's output port; free it, or close and recreate the broadcast");
		}
		if (await ports.stillFree(this.#inputPorts!)) return;
		const taken = this.#inputPorts!;
		const fresh = await ports.acquireFeed();
		this.#consumerTransport?.close();
		ports.release(taken);
		this.#inputPorts = fresh;
		this.#logger.warn({ taken: taken.rtp, moved: fresh.rtp }, "another program took FFmpeg's input port; moving the re-encoder's input");
		await this.#openFeedTransport();
		this.#feedMoves += 1;
	}

	#ffmpegArgs(): string[] {
		const transport = this.#producerTransport!;
		const target = {
			host: LOOPBACK,
			rtpPort: transport.tuple.localPort,
			rtcpPort: transport.rtcpTuple?.localPort ?? transport.tuple.localPort,
			localRtpPort: this.#outputPorts!.rtp,
			localRtcpPort: this.#outputPorts!.rtcp,
			ssrc: this.#ssrc,
			payloadType: this.#producer!.rtpParameters.codecs[0]!.payloadType,
			seq: this.#nextSeq,
		};
		return this.#options.video
			? videoReencoderArgs(this.#options.video, target)
			: audioReencoderArgs(this.#options.audio ?? { bitrateKbps: 64 }, target);
	}

	async #spawnFfmpeg(): Promise<void> {
		const sdp = ffmpegInputSdp(this.#consumer!.rtpParameters, this.#inputPorts!.feedHost, this.#inputPorts!.rtp);
		const ffmpeg = new FfmpegProcess({
			binary: this.#options.ffmpegPath,
			args: this.#ffmpegArgs(),
			stdin: sdp,
			killTimeoutMs: FFMPEG_KILL_TIMEOUT_MS,
			logger: this.#logger.child({ ffmpegRun: this.#restarts }),
		});
		this.#ffmpeg = ffmpeg;
		let lastAdvance = performance.now();
		ffmpeg.on('progress', (progress) => {
			if (progress.frame !== this.#progress.frame) lastAdvance = performance.now();
			// Nothing encoded yet in this run: the keyframe FFmpeg started from was lost to probing.
			if (progress.frame === 0) this.#askForKeyframe();
			this.#progress = progress;
		});
		// A decode error while frames still come out is passing; one while they do not means a lost reference.
		ffmpeg.on('needskeyframe', () => {
			if (performance.now() - lastAdvance > 1000) this.#askForKeyframe();
		});
		ffmpeg.on('died', () => this.#onFfmpegDied());
		await ffmpeg.start();
		// FFmpeg binds its input socket after reading the SDP; RTP sent before that is lost,
		// so wait for the bind and then ask the broadcaster for a keyframe to decode from.
		const bound = await waitForUdpBind(this.#inputPorts!.rtp, 5000, this.#abort.signal, this.#inputPorts!.host);
		if (!bound && !ffmpeg.closed) this.#logger.warn('ffmpeg did not bind its input port within 5 s');
		if (!this.#consumer!.closed) await this.#consumer!.requestKeyFrame().catch(() => undefined);
	}

	/**
	 * FFmpeg cannot decode without a keyframe and never asks for one itself, so
	 * the re-encoder asks the broadcaster on its behalf (at most once a second):
	 * at start, and when FFmpeg reports it lost its reference ("after loss").
	 * CPU stalls do not count: a keyframe would not help them.
	 */
	#askForKeyframe(): void {
		const now = performance.now();
		if (now - this.#lastKeyframeRequest < 1000 || !this.#consumer || this.#consumer.closed) return;
		this.#lastKeyframeRequest = now;
		this.#logger.debug('asking the broadcaster for a keyframe for FFmpeg');
		void this.#consumer.requestKeyFrame().catch(() => undefined);
	}

	#onFfmpegDied(): void {
		if (this.#closed || this.#restartLoop) return;
		this.#restartLoop = this.#restartWithBackoff().finally(() => {
			this.#restartLoop = undefined;
		});
	}

	async #restartWithBackoff(): Promise<void> {
		const { initialMs, maxMs } = this.#options.restartBackoff;
		let delay = initialMs;
		while (!this.#abort.signal.aborted) {
			await new Promise((resolve) => setTimeout(resolve, delay));
			if (this.#abort.signal.aborted) return;
			this.#restarts += 1;
			try {
				// Continue the sequence numbers: a jump would look like thousands of lost packets
				// downstream (mediasoup forwards it, and decoders wait for the gap to fill).
				const stats = await this.#producer!.getStats().catch(() => []);
				const received = stats.reduce((sum, s) => sum + (s.packetCount ?? 0), 0);
				this.#nextSeq = (this.#firstSeq + received) & 0xffff;
				await this.#moveFeedIfTaken();
				await this.#spawnFfmpeg();
				if (this.#consumer!.paused) await this.#consumer!.resume();
				this.#logger.info({ restarts: this.#restarts, pid: this.#ffmpeg?.pid }, 'ffmpeg restarted');
				this.emit('restarted', { restarts: this.#restarts, pid: this.#ffmpeg?.pid });
				return;
			} catch (error) {
				this.#logger.error({ err: error }, 'ffmpeg restart failed; backing off');
				delay = Math.min(delay * 2, maxMs);
			}
		}
	}

	/** Kills FFmpeg, closes both transports (and so the consumer and producer) and frees the ports. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#abort.abort();
		await this.#restartLoop;
		await this.#ffmpeg?.close();
		this.#consumerTransport?.close();
		this.#producerTransport?.close();
		if (this.#inputPorts) this.#options.ports.release(this.#inputPorts);
		if (this.#outputPorts) this.#options.ports.release(this.#outputPorts);
	}
}
