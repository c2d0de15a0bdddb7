import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { codecFromMimeType, plainReceiverCapabilities, type CodecName } from '../codecs.js';
import { ProducerClosedError } from '../errors.js';
import { audioReencoderArgs, videoReencoderArgs, type AudioEncoding, type VideoEncoding } from '../ffmpeg/args.js';
import { FfmpegProcess, type FfmpegProgress } from '../ffmpeg/FfmpegProcess.js';
import { ffmpegInputSdp } from '../ffmpeg/inputSdp.js';
import type { Logger } from '../logger.js';
import { plainProducerParameters } from '../producerParameters.js';
import type { FeedPorts, PortPair, PortPool } from '../ports/PortPool.js';
import { feedConnectParams, feedTransportOptions } from '../ffmpeg/inputFeed.js';
import { waitForUdpBind } from '../ports/waitForUdpBind.js';
import type { LibavEngine } from './libav/LibavEngine.js';
import type { EngineHealth, EngineLayerStats, TrackWiring } from './libav/protocol.js';

const LOOPBACK = '127.0.0.1';
/**
 * SIGTERM to SIGKILL, ms. An FFmpeg waiting for input (its source gone, or never
 * come) does not act on SIGTERM, so closing it took the default 2 s, and a
 * pipeline rebuild or a republish waited that long; a live re-encoder has no
 * file to finish, so killing it sooner loses nothing.
 */
const FFMPEG_KILL_TIMEOUT_MS = 300;
/** libav engine: at most one keyframe request to the broadcaster per this long, ms. */
const UPSTREAM_KEYFRAME_INTERVAL_MS = 2000;
/** libav engine: ask the broadcaster again when no keyframe came this long after the first packet, ms. */
const FIRST_KEYFRAME_TIMEOUT_MS = 1500;

export interface TrackReencoderOptions {
	/** The broadcaster's producer, on `sourceRouter`. */
	source: ms.Producer;
	sourceRouter: ms.Router;
	/** Router the re-encoded producer is created on. */
	encoderRouter: ms.Router;
	/** "ffmpeg": an FFmpeg per track, started here; "libav": a track of the broadcast's engine process `libav`. */
	engine: 'ffmpeg' | 'libav';
	/** The broadcast's libav engine (owned by the encoder), for engine "libav". */
	libav?: LibavEngine;
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
	engine: 'ffmpeg' | 'libav';
	running: boolean;
	/** ok, degraded (with a reason), or stalled. The FFmpeg engine reports only what its progress shows. */
	health: EngineHealth;
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
	/** Keyframes the re-encoder made (libav engine). */
	keyframes?: number;
	/** ...of which on demand, for viewers' requests (libav engine). */
	keyframesOnDemand?: number;
	/** Keyframe requests (PLI/FIR) that reached the re-encoded producer's sender (libav engine). */
	keyframeRequestsReceived?: number;
	/** Keyframe requests the re-encoder sent to the broadcaster. */
	upstreamKeyframeRequests: number;
	/** libav engine input repair: NACKs sent, packets repaired, packets lost for good. */
	nacksSent?: number;
	packetsRepaired?: number;
	packetsLost?: number;
	/** libav engine: frames decoded but not encoded (behind real time), and last pictures repeated (input broken). */
	framesSkipped?: number;
	framesRepeated?: number;
	/** libav engine: frames dropped undecoded while waiting for a keyframe. */
	framesDropped?: number;
	/** libav engine: arrival of a frame to its re-encoded packets leaving, ms, over the last second. */
	latencyMsP50?: number;
	latencyMsP95?: number;
	/** libav engine: 0 normal, 1 cheaper encoder settings, 2 half resolution. */
	effort?: number;
	/** libav engine: audio held back to match video, ms. */
	audioDelayMs?: number;
	/** libav engine: first keyframe from the broadcaster to the first re-encoded frame leaving, ms. */
	startupMs?: number;
	/** libav engine, video: the simulcast ladder's layers, lowest first (SSRC, size, fps, kbit/s, keyframes). */
	layers?: EngineLayerStats[];
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
	/**
	 * Renditions, lowest first: a video ladder's layers (libav engine), else one.
	 * Each is an encoding of the one re-encoded producer with its own SSRC and
	 * sequence numbers (the first run's random start; later runs continue).
	 */
	readonly #layers: Array<{ ssrc: number; firstSeq: number; nextSeq: number; width: number; height: number; fps: number; bitrateKbps: number }>;
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
	#upstreamKeyframeRequests = 0;
	/** Random per track, kept across engine restarts: output RTP timestamps stay continuous. */
	readonly #timestampBase = randomInt(0, 2 ** 32);
	#progress: FfmpegProgress = { frame: 0, fps: 0, bitrateKbps: 0, speed: 0, dropFrames: 0, dupFrames: 0 };
	#closed = false;

	private constructor(options: TrackReencoderOptions) {
		super();
		this.#options = options;
		this.#logger = options.logger.child({ module: 'TrackReencoder', kind: options.source.kind });
		const { video } = options;
		const ladder = video ? (options.engine === 'libav' && video.ladder?.length ? video.ladder : [{ width: video.width, height: video.height, fps: video.fps, bitrateKbps: video.bitrateKbps }]) : [{ width: 0, height: 0, fps: 0, bitrateKbps: options.audio?.bitrateKbps ?? 64 }];
		const ssrcs = new Set<number>();
		while (ssrcs.size < ladder.length) ssrcs.add(randomInt(1, 2 ** 31));
		this.#layers = ladder.map((rendition, i) => {
			const firstSeq = randomInt(0, 65536);
			return { ...rendition, ssrc: [...ssrcs][i]!, firstSeq, nextSeq: firstSeq };
		});
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

	/** SSRC of the re-encoded stream (a ladder's top layer). */
	get ssrc(): number {
		return this.#layers.at(-1)!.ssrc;
	}

	/** SSRCs of the re-encoded producer's encodings, lowest layer first. */
	get ssrcs(): number[] {
		return this.#layers.map((layer) => layer.ssrc);
	}

	/** The process doing the media work: this track's FFmpeg, or the broadcast's libav engine (shared by its tracks). */
	get pid(): number | undefined {
		return this.#options.engine === 'libav' ? this.#options.libav?.pid : this.#ffmpeg?.pid;
	}

	get stats(): TrackReencoderStats {
		const base = {
			kind: this.#options.source.kind,
			codec: this.#outputCodec(),
			engine: this.#options.engine,
			inputPort: this.#inputPorts?.rtp ?? 0,
			inputMoves: this.#feedMoves,
			upstreamKeyframeRequests: this.#upstreamKeyframeRequests,
		};
		if (this.#options.engine === 'libav') {
			const engine = this.#options.libav!;
			const s = engine.stats(this.#options.source.kind);
			const { kind: _kind, fps = 0, bitrateKbps = 0, framesEncoded = 0, health, upstreamKeyframeRequests: _up, ...rest } = s ?? {};
			return {
				...base,
				...rest,
				running: engine.running,
				health: engine.running ? (health ?? { state: 'stalled', reason: 'engine: starting' }) : { state: 'stalled', reason: 'engine: restarting' },
				...(engine.pid !== undefined ? { pid: engine.pid } : {}),
				restarts: engine.restarts,
				fps,
				bitrateKbps,
				speed: engine.running && fps > 0 ? 1 : 0,
				framesEncoded,
			};
		}
		const running = Boolean(this.#ffmpeg && !this.#ffmpeg.closed);
		const progress = this.#progress;
		return {
			...base,
			running,
			health: !running
				? { state: 'stalled', reason: 'ffmpeg: restarting' }
				: progress.frame === 0
					? { state: 'stalled', reason: 'ffmpeg: no frame yet' }
					: progress.frame > 60 && progress.speed > 0 && progress.speed < 0.9
						? { state: 'degraded', reason: `cpu: ffmpeg at ${progress.speed}x real time` }
						: { state: 'ok' },
			pid: this.#ffmpeg?.closed ? undefined : this.#ffmpeg?.pid,
			restarts: this.#restarts,
			fps: progress.fps,
			bitrateKbps: progress.bitrateKbps,
			speed: progress.speed,
			framesEncoded: progress.frame,
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
		// Only the engine's pinned source ports may produce here (comedia would take whoever sends first).
		await this.#producerTransport.connect({ ip: LOOPBACK, port: this.#outputPorts.rtp, rtcpPort: this.#outputPorts.rtcp });
		// PLI and FIR are accepted (and counted) at this producer and sent to the engine's RTCP port: the
		// libav engine makes a keyframe on demand; FFmpeg ignores them (it keyframes on its own clock).
		// A ladder is one producer with an encoding per layer, lowest first, as mediasoup expects
		// simulcast: viewers' consumers are then simulcast consumers, which pick a layer each.
		const rtpParameters = plainProducerParameters({ codec: this.#outputCodec(), payloadType: source.kind === 'video' ? 96 : 111, ssrc: this.#layers[0]!.ssrc });
		if (this.#layers.length > 1) rtpParameters.encodings = this.#layers.map((layer) => ({ ssrc: layer.ssrc, maxBitrate: layer.bitrateKbps * 1000 }));
		this.#producer = await this.#producerTransport.produce({
			kind: source.kind,
			rtpParameters,
			appData: { reencoded: true },
		});

		if (this.#options.engine === 'libav') await this.#attachToLibav();
		else await this.#spawnFfmpeg();
		await this.#consumer!.resume();
	}

	/** Hands this track to the broadcast's libav engine, which asks for its wiring again after each restart. */
	async #attachToLibav(): Promise<void> {
		const engine = this.#options.libav;
		if (!engine) throw new Error('engine "libav" needs the broadcast\'s LibavEngine');
		const kind = this.#options.source.kind;
		const onUpstream = (request: { kind: ms.MediaKind; reason: string }): void => {
			if (request.kind !== kind || !this.#consumer || this.#consumer.closed) return;
			this.#upstreamKeyframeRequests += 1;
			this.#logger.debug({ reason: request.reason }, 'asking the broadcaster for a keyframe for the libav engine');
			void this.#consumer.requestKeyFrame().catch(() => undefined);
		};
		const onRestarted = ({ restarts, pid }: { restarts: number; pid: number | undefined }): void => {
			this.#restarts = restarts;
			this.emit('restarted', { restarts, pid });
		};
		engine.on('upstreamkeyframe', onUpstream);
		engine.on('restarted', onRestarted);
		this.#abort.signal.addEventListener('abort', () => {
			engine.off('upstreamkeyframe', onUpstream);
			engine.off('restarted', onRestarted);
		});
		await engine.attach(kind, (restart) => this.#libavWiring(restart));
	}

	async #libavWiring(restart: boolean): Promise<TrackWiring> {
		if (restart) {
			await this.#continueSequenceNumbers();
			await this.#moveFeedIfTaken();
			if (this.#consumer!.paused) await this.#consumer!.resume();
		}
		const consumerParameters = this.#consumer!.rtpParameters;
		const codec = consumerParameters.codecs[0]!;
		const transport = this.#producerTransport!;
		const { video, audio } = this.#options;
		return {
			kind: this.#options.source.kind,
			input: {
				codec: codecFromMimeType(codec.mimeType),
				payloadType: codec.payloadType,
				ssrc: consumerParameters.encodings?.[0]?.ssrc ?? 0,
				clockRate: codec.clockRate,
				host: this.#inputPorts!.host,
				port: this.#inputPorts!.rtp,
				remoteHost: this.#inputPorts!.feedHost,
				remotePort: this.#inputPorts!.rtp,
			},
			output: {
				codec: this.#outputCodec(),
				payloadType: this.#producer!.rtpParameters.codecs[0]!.payloadType,
				ssrc: this.#layers[0]!.ssrc,
				firstSequenceNumber: this.#layers[0]!.nextSeq,
				timestampBase: this.#timestampBase,
				host: LOOPBACK,
				rtpPort: this.#outputPorts!.rtp,
				rtcpPort: this.#outputPorts!.rtcp,
				remoteHost: LOOPBACK,
				remoteRtpPort: transport.tuple.localPort,
				remoteRtcpPort: transport.rtcpTuple?.localPort ?? transport.tuple.localPort,
			},
			...(video
				? {
						video: {
							fps: video.fps,
							threads: video.threads,
							keyframeIntervalMs: video.keyframeIntervalSeconds * 1000,
							minKeyframeIntervalMs: video.minKeyframeIntervalMs ?? 500,
							layers: this.#layers.map(({ width, height, fps, bitrateKbps, ssrc, nextSeq }) => ({ width, height, fps, bitrateKbps, ssrc, firstSequenceNumber: nextSeq })),
						},
					}
				: { audio: { reencode: audio?.reencode ?? false, bitrateKbps: audio?.bitrateKbps ?? 64 } }),
			upstreamKeyframeIntervalMs: UPSTREAM_KEYFRAME_INTERVAL_MS,
			// After a restart the engine has no picture: ask at once. At the first start, mediasoup
			// already asked when the consumer was resumed; ask again only if nothing came.
			firstKeyframeTimeoutMs: restart ? 0 : FIRST_KEYFRAME_TIMEOUT_MS,
		};
	}

	/** Continue each layer's sequence numbers: a jump would look like thousands of lost packets downstream. */
	async #continueSequenceNumbers(): Promise<void> {
		const stats = await this.#producer!.getStats().catch(() => []);
		for (const layer of this.#layers) {
			const received = stats.filter((s) => s.ssrc === layer.ssrc).reduce((sum, s) => sum + (s.packetCount ?? 0), 0);
			layer.nextSeq = (layer.firstSeq + received) & 0xffff;
		}
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
				// The libav engine repairs loss with NACKs; FFmpeg's RTP demuxer cannot.
			rtpCapabilities: plainReceiverCapabilities(sourceRouter.rtpCapabilities, { nack: this.#options.engine === 'libav' }),
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
			ssrc: this.#layers[0]!.ssrc,
			payloadType: this.#producer!.rtpParameters.codecs[0]!.payloadType,
			seq: this.#layers[0]!.nextSeq,
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
		this.#upstreamKeyframeRequests += 1;
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
				await this.#continueSequenceNumbers();
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
		// The engine process is the encoder's; only this track leaves it.
		if (this.#options.engine === 'libav') this.#options.libav?.detach(this.#options.source.kind);
		this.#consumerTransport?.close();
		this.#producerTransport?.close();
		if (this.#inputPorts) this.#options.ports.release(this.#inputPorts);
		if (this.#outputPorts) this.#options.ports.release(this.#outputPorts);
	}
}
