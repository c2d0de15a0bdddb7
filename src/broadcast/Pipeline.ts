import { EventEmitter } from 'node:events';
import type { PublishedTrack } from '../fanout/FanOut.js';
import type { Logger } from '../logger.js';
import type { BroadcastOptions } from '../options.js';
import { Encoder } from './Encoder.js';
import { Ingest } from './Ingest.js';
import type { IngestSource } from './ingest/IngestSource.js';
import type { KeyframeCounter } from './KeyframeCounter.js';
import type { BroadcastContext, BroadcastEvents } from './types.js';

export interface PipelineOptions {
	broadcastId: string;
	broadcast: BroadcastOptions;
	context: BroadcastContext;
	keyframes: KeyframeCounter;
	logger: Logger;
}

/** The published tracks changed (see `tracks`); the rest as the broadcast's events of those names. After "rebuildfailed" its owner must close it. */
export type PipelineEvents = { tracks: [] } & Pick<BroadcastEvents, 'sourceclosed' | 'reencoderrestarted' | 'rebuilt' | 'rebuildfailed'>;

/** Rebuild passes before giving up while workers keep dying under it. */
const MAX_REBUILD_PASSES = 5;

/**
 * Ingest → encoder → published tracks. Owns the ingest (router, sources) and
 * the encoder (router, re-encoders). When a worker either stands on dies, its
 * owner calls workerDied(): what stood there is replaced whole on live workers
 * and the sources are fed in again (an attached producer is piped in again;
 * a remote sender on a dead ingest must publish again, reported as
 * "sourceclosed"). A rebuild that cannot finish emits "rebuildfailed".
 */
export class Pipeline extends EventEmitter<PipelineEvents> {
	readonly #options: PipelineOptions;
	readonly #logger: Logger;
	#ingest!: Ingest;
	#encoder!: Encoder;
	#rebuilding?: Promise<void>;
	/** A worker under the pipeline died and no rebuild pass has started since. */
	#rebuildFor?: number;
	/** Sources of retired ingests not yet taken over; kept across passes, so a pass that fails loses none. */
	readonly #orphans: IngestSource[] = [];
	#closed = false;

	private constructor(options: PipelineOptions) {
		super();
		this.#options = options;
		this.#logger = options.logger;
	}

	static async create(options: PipelineOptions): Promise<Pipeline> {
		const pipeline = new Pipeline(options);
		try {
			const workers = options.context.pickWorkers();
			pipeline.#ingest = await pipeline.#newIngest(workers.ingest);
			pipeline.#encoder = await pipeline.#newEncoder(workers.encoder);
		} catch (error) {
			await pipeline.close();
			throw error;
		}
		return pipeline;
	}

	get ingest(): Ingest {
		return this.#ingest;
	}

	get encoder(): Encoder {
		return this.#encoder;
	}

	get tracks(): PublishedTrack[] {
		return this.#encoder.tracks;
	}

	/** Settles when no rebuild is running. */
	get rebuilding(): Promise<void> | undefined {
		return this.#rebuilding;
	}

	/**
	 * A worker died. Returns true when the pipeline stood on it (or was being
	 * rebuilt, and so may have): its tracks are gone and it is rebuilding.
	 */
	workerDied(workerIndex: number): boolean {
		if (this.#closed) return false;
		const stoodThere = this.#rebuilding !== undefined || workerIndex === this.#ingest.workerIndex || workerIndex === this.#encoder.workerIndex;
		if (!stoodThere) return false;
		this.#rebuildFor = workerIndex;
		this.#rebuilding ??= this.#rebuildUntilSettled().finally(() => {
			this.#rebuilding = undefined;
		});
		return true;
	}

	/** Rebuilds until no worker died during the last pass; a pass failing with no new death to explain it is final. */
	async #rebuildUntilSettled(): Promise<void> {
		for (let pass = 1; this.#rebuildFor !== undefined && !this.#closed; pass++) {
			const workerIndex = this.#rebuildFor;
			this.#rebuildFor = undefined;
			this.#logger.warn({ workerIndex, pass }, 'pipeline worker died; rebuilding the broadcast pipeline');
			try {
				await this.#rebuildPass();
				if (this.#rebuildFor === undefined && !this.#closed) this.emit('rebuilt', { workerIndex });
			} catch (error) {
				if (this.#closed) return;
				if (this.#rebuildFor !== undefined && pass < MAX_REBUILD_PASSES) continue;
				this.#logger.error({ err: error, workerIndex }, 'could not rebuild the broadcast pipeline');
				this.emit('rebuildfailed', { workerIndex, error: error as Error });
				return;
			}
		}
	}

	/** Replaces what stands on a dead worker, judged by state (a closed router), not by which event came first. */
	async #rebuildPass(): Promise<void> {
		const { pool } = this.#options.context;
		if (pool.liveSlots.length === 0) await pool.whenSettled();
		const workers = this.#options.context.pickWorkers();
		if (this.#ingest.closed) {
			this.#orphans.push(...this.#ingest.retire());
			this.#ingest = await this.#newIngest(workers.ingest);
		}
		if (this.#encoder.broken || this.#encoder.ingestRouter !== this.#ingest.router) {
			await this.#encoder.close();
			// Keep the encoder off the ingest worker where another live one exists.
			const others = pool.liveSlots.map((s) => s.index).filter((i) => i !== this.#ingest.workerIndex);
			const encoderWorker = workers.encoder !== this.#ingest.workerIndex ? workers.encoder : (others[0] ?? this.#ingest.workerIndex);
			this.#encoder = await this.#newEncoder(encoderWorker);
			for (const producer of this.#ingest.producers) await this.#encoder.add(producer);
		}
		while (this.#orphans.length > 0) {
			const reattached = await this.#ingest.reattach(this.#orphans[0]!);
			const { kind } = this.#orphans.shift()!;
			if (!reattached) this.emit('sourceclosed', { kind, reason: 'ingest worker died; the encoder must publish again' });
		}
	}

	async #newIngest(workerIndex: number): Promise<Ingest> {
		const { broadcastId, context, keyframes } = this.#options;
		const ingest = await Ingest.create({
			broadcastId,
			pool: context.pool,
			workerIndex,
			listenIp: context.transport.listenIps[0]!,
			peerTimeoutMs: context.transport.peerTimeoutMs,
			silentPublisherMs: context.silentPublisherMs,
			// The encoder in place when a source comes or goes, which a rebuild may have replaced.
			downstream: { add: (producer) => this.#encoder.add(producer), remove: (kind) => this.#encoder.remove(kind) },
			keyframes,
			logger: this.#logger,
		});
		ingest.on('sourceclosed', (event) => this.emit('sourceclosed', event));
		return ingest;
	}

	async #newEncoder(workerIndex: number): Promise<Encoder> {
		const { broadcastId, broadcast, context, keyframes } = this.#options;
		const encoder = await Encoder.create({
			broadcastId,
			broadcast,
			pool: context.pool,
			workerIndex,
			ingestRouter: this.#ingest.router,
			ffmpegPath: context.ffmpegPath,
			ports: context.ports,
			restartBackoff: context.restartBackoff,
			keyframes,
			logger: this.#logger,
		});
		encoder.on('tracks', () => this.emit('tracks'));
		encoder.on('reencoderrestarted', (event) => this.emit('reencoderrestarted', event));
		return encoder;
	}

	/** Waits out a running rebuild, then closes the encoder (FFmpeg, ports) and the ingest (transports, router). Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		await this.#rebuilding;
		await this.#encoder?.close();
		this.#ingest?.close();
		this.removeAllListeners();
	}
}
