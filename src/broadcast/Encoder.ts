import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { codecFromMimeType, type CodecName } from '../codecs.js';
import { ClosedError } from '../errors.js';
import type { PublishedTrack } from '../fanout/FanOut.js';
import type { Logger } from '../logger.js';
import type { BroadcastOptions } from '../options.js';
import type { PortPool } from '../ports/PortPool.js';
import { LibavEngine } from '../reencoder/libav/LibavEngine.js';
import { TrackReencoder, type TrackReencoderStats } from '../reencoder/TrackReencoder.js';
import type { WorkerPool } from '../workers/WorkerPool.js';
import type { KeyframeCounter } from './KeyframeCounter.js';
import { openBroadcastRouter } from './types.js';

export interface EncoderOptions {
	broadcastId: string;
	broadcast: BroadcastOptions;
	pool: WorkerPool;
	/** Worker of the encoder router. */
	workerIndex: number;
	/** The ingest router the sources are on (the re-encoders consume there). */
	ingestRouter: ms.Router;
	ffmpegPath: string;
	ports: PortPool;
	restartBackoff: { initialMs: number; maxMs: number };
	keyframes: KeyframeCounter;
	logger: Logger;
}

export interface EncoderEvents {
	/** The published tracks changed (see `tracks`). */
	tracks: [];
	/** A re-encoder's FFmpeg was restarted. */
	reencoderrestarted: [{ kind: ms.MediaKind; restarts: number }];
}

interface Stage {
	source: ms.Producer;
	reencoder?: TrackReencoder;
	track: PublishedTrack;
}

/**
 * From sources to published tracks: the encoder router and a re-encoder per
 * source in relay mode (video always, audio when asked), or the source itself
 * in baseline mode. When its worker, or the ingest worker its re-encoders
 * consume on, dies, the pipeline replaces it whole and feeds it the sources again.
 */
export class Encoder extends EventEmitter<EncoderEvents> {
	readonly workerIndex: number;
	readonly encoderRouter: ms.Router;
	readonly #options: EncoderOptions;
	readonly #stages = new Map<ms.MediaKind, Stage>();
	/** Re-encoders being closed (FFmpeg exiting); close() waits for them too. */
	readonly #closing = new Set<Promise<void>>();
	/** The libav engine process all this encoder's tracks share (engine "libav"), started with the first track. */
	#libav?: Promise<LibavEngine>;
	/** libav tracks live or starting; the engine closes when it drops to 0. */
	#libavTracks = 0;
	#closed = false;

	private constructor(options: EncoderOptions, encoderRouter: ms.Router) {
		super();
		this.#options = options;
		this.workerIndex = options.workerIndex;
		this.encoderRouter = encoderRouter;
	}

	static async create(options: EncoderOptions): Promise<Encoder> {
		return new Encoder(options, await openBroadcastRouter(options.pool, { ...options, tier: 'encoder' }));
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** True when a router it stands on is gone (its worker died). */
	get broken(): boolean {
		return this.encoderRouter.closed || this.#options.ingestRouter.closed;
	}

	get ingestRouter(): ms.Router {
		return this.#options.ingestRouter;
	}

	/** What viewers consume, one per kind. */
	get tracks(): PublishedTrack[] {
		return [...this.#stages.values()].map((s) => s.track);
	}

	reencoder(kind: ms.MediaKind): TrackReencoder | undefined {
		return this.#stages.get(kind)?.reencoder;
	}

	get reencoderStats(): TrackReencoderStats[] {
		return [...this.#stages.values()].flatMap((s) => (s.reencoder ? [s.reencoder.stats] : []));
	}

	/** Publishes `source` (a producer on the ingest router): through a new re-encoder, or as it is. */
	async add(source: ms.Producer): Promise<void> {
		if (this.#closed) throw new ClosedError('broadcast encoder');
		const { broadcast, keyframes } = this.#options;
		const kind = source.kind;
		const libav = broadcast.engine === 'libav';
		// With the libav engine audio always goes through the engine (passed through unless asked
		// otherwise), to be held back by the video's latency: viewers get both on one timeline.
		const reencode = broadcast.mode === 'relay' && (kind === 'video' || broadcast.audio.reencode || libav);
		if (!reencode) {
			this.#set(kind, { source, track: { kind, codec: codecFromMimeType(source.rtpParameters.codecs[0]!.mimeType), producer: source, router: this.ingestRouter } });
			return;
		}
		// Counted from here, so the engine is not closed under a track that is still starting.
		if (libav) this.#libavTracks += 1;
		let reencoder: TrackReencoder;
		try {
			reencoder = await TrackReencoder.create({
				source,
				sourceRouter: this.ingestRouter,
				encoderRouter: this.encoderRouter,
				engine: broadcast.engine,
				...(libav ? { libav: await this.#libavEngine() } : {}),
				ffmpegPath: this.#options.ffmpegPath,
				ports: this.#options.ports,
				...(kind === 'video' ? { video: broadcast.video } : { audio: { bitrateKbps: broadcast.audio.bitrateKbps, reencode: broadcast.audio.reencode } }),
				restartBackoff: this.#options.restartBackoff,
				logger: this.#options.logger,
			});
		} catch (error) {
			// Nothing of a failed start stays behind, its engine process included.
			if (libav) await this.#libavTrackGone();
			throw error;
		}
		try {
			if (this.#closed) throw new ClosedError('broadcast encoder');
			await keyframes.watchReencoded(reencoder.producer);
			// Closed while the re-encoder started (the pipeline was rebuilt): this one is not wanted any more.
			if (this.#closed) throw new ClosedError('broadcast encoder');
		} catch (error) {
			await reencoder.close();
			if (libav) await this.#libavTrackGone();
			throw error;
		}
		reencoder.on('restarted', ({ restarts }) => this.emit('reencoderrestarted', { kind, restarts }));
		const codec: CodecName = kind === 'video' ? broadcast.video.codec : 'opus';
		this.#set(kind, { source, reencoder, track: { kind, codec, producer: reencoder.producer, router: this.encoderRouter } });
	}

	/** Stops publishing `kind` (its source closed); closes its re-encoder. */
	remove(kind: ms.MediaKind): void {
		const stage = this.#stages.get(kind);
		if (!stage) return;
		this.#stages.delete(kind);
		if (stage.reencoder) this.#retire(stage.reencoder);
		this.emit('tracks');
	}

	/** This encoder's libav engine process, started on first use (a failed start is retried at the next track). */
	#libavEngine(): Promise<LibavEngine> {
		this.#libav ??= LibavEngine.create({ logger: this.#options.logger.child({ broadcastId: this.#options.broadcastId }), restartBackoff: this.#options.restartBackoff });
		const starting = this.#libav;
		starting.catch(() => {
			if (this.#libav === starting) this.#libav = undefined;
		});
		return starting;
	}

	#set(kind: ms.MediaKind, stage: Stage): void {
		const old = this.#stages.get(kind);
		this.#stages.set(kind, stage);
		if (old?.reencoder && old.reencoder !== stage.reencoder) this.#retire(old.reencoder);
		this.emit('tracks');
	}

	#retire(reencoder: TrackReencoder): void {
		const closing = reencoder
			.close()
			.then(() => (reencoder.stats.engine === 'libav' ? this.#libavTrackGone() : undefined))
			.finally(() => this.#closing.delete(closing));
		this.#closing.add(closing);
	}

	/**
	 * A libav track left (or failed to start). With none left the engine process goes too
	 * (a broadcast without a source holds no process); the next track starts a new one.
	 */
	async #libavTrackGone(): Promise<void> {
		this.#libavTracks -= 1;
		if (this.#libavTracks > 0 || this.#closed || !this.#libav) return;
		const engine = this.#libav;
		this.#libav = undefined;
		await (await engine.catch(() => undefined))?.close();
	}

	/** Kills the re-encoders (FFmpeg and ports) and closes the encoder router. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		const stages = [...this.#stages.values()];
		this.#stages.clear();
		await Promise.all([...stages.map((s) => s.reencoder?.close()), ...this.#closing]);
		await (await this.#libav?.catch(() => undefined))?.close();
		this.encoderRouter.close();
		this.removeAllListeners();
	}
}
