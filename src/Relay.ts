import { EventEmitter } from 'node:events';
import { Broadcast, type BroadcastStats } from './Broadcast.js';
import { CpuLoad, reencoderCoresFor } from './capacity/CpuLoad.js';
import { CapacityExceededError, ClosedError, ConflictError, NotFoundError } from './errors.js';
import { resolveFfmpeg, type ResolvedFfmpeg } from './ffmpeg/binary.js';
import { createDefaultLogger, type Logger } from './logger.js';
import {
	resolveBroadcastOptions,
	resolveRelayOptions,
	type BroadcastOptions,
	type BroadcastOptionsInput,
	type RelayOptions,
	type RelayOptionsInput,
} from './options.js';
import { PortPool } from './ports/PortPool.js';
import { WorkerPool } from './workers/WorkerPool.js';

export interface WorkerLoadInfo {
	index: number;
	pid: number;
	alive: boolean;
	consumers: number;
	budget: number;
}

export interface RelayStats {
	ready: boolean;
	workers: WorkerLoadInfo[];
	broadcasts: BroadcastStats[];
}

export interface RelayEvents {
	/** Viewers lost with a dead worker, per broadcast: reconnect them. */
	viewerslost: [{ broadcastId: string; workerIndex: number; viewerIds: string[] }];
	workerdied: [{ index: number; pid: number }];
	workerreplaced: [{ index: number; pid: number }];
	broadcastcreated: [Broadcast];
	broadcastclosed: [{ id: string }];
}

/**
 * The relay: a pool of mediasoup workers, the port pool for FFmpeg, and the
 * broadcasts. Create one with createRelay(); close() ends every broadcast,
 * kills every FFmpeg and closes every worker.
 */
export class Relay extends EventEmitter<RelayEvents> {
	readonly options: RelayOptions;
	readonly ffmpeg: ResolvedFfmpeg;
	readonly logger: Logger;
	readonly #pool: WorkerPool;
	readonly #ports: PortPool;
	readonly #broadcasts = new Map<string, Broadcast>();
	readonly #pending = new Set<string>();
	/** The machine's idle CPU, for admitting re-encoded broadcasts. */
	readonly #cpu = new CpuLoad();
	/** Re-encoders admitted lately, whose load the CPU window does not show yet. */
	#admitted: { cores: number; until: number }[] = [];
	#nextWorker = 0;
	#closed = false;

	private constructor(options: RelayOptions, ffmpeg: ResolvedFfmpeg, pool: WorkerPool, logger: Logger) {
		super();
		this.options = options;
		this.ffmpeg = ffmpeg;
		this.logger = logger;
		this.#pool = pool;
		this.#ports = new PortPool({ min: options.ffmpegMinPort, max: options.ffmpegMaxPort, host: '127.0.0.1' });
		// Broadcasts handle a dead worker themselves (each is the one listener for what it owns); this only reports it.
		pool.on('workerdied', ({ index, pid }) => this.emit('workerdied', { index, pid }));
		pool.on('workerreplaced', (slot) => this.emit('workerreplaced', { index: slot.index, pid: slot.worker.pid }));
	}

	static async create(input: RelayOptionsInput = {}): Promise<Relay> {
		const { logger: givenLogger, ...rest } = input;
		const options = resolveRelayOptions(rest);
		const logger = (givenLogger ?? createDefaultLogger()).child({ module: 'Relay' });
		// Fail at startup, not at the first broadcast, when FFmpeg is missing.
		const ffmpeg = resolveFfmpeg(options.ffmpegPath);
		logger.info({ ffmpeg: ffmpeg.path, source: ffmpeg.source, version: ffmpeg.version }, 'using ffmpeg');
		const pool = await WorkerPool.create({
			count: options.workers,
			rtcMinPort: options.rtcMinPort,
			rtcMaxPort: options.rtcMaxPort,
			logLevel: options.workerLogLevel,
			logger,
			respawnDelayMs: 200,
		});
		return new Relay(options, ffmpeg, pool, logger);
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** False while a dead worker is being replaced. */
	get ready(): boolean {
		return !this.#closed && this.#pool.rebuilding === 0;
	}

	get pool(): WorkerPool {
		return this.#pool;
	}

	get ports(): PortPool {
		return this.#ports;
	}

	get broadcasts(): ReadonlyMap<string, Broadcast> {
		return this.#broadcasts;
	}

	broadcast(id: string): Broadcast {
		const broadcast = this.#broadcasts.get(id);
		if (!broadcast) throw new NotFoundError(`no broadcast "${id}"; list broadcasts to see which exist`);
		return broadcast;
	}

	/**
	 * Throws CapacityExceededError when the machine has no CPU left for one more
	 * re-encoder: idle cores over the last seconds, less what broadcasts admitted in
	 * that time will take once they run, below its expected need.
	 */
	#admitReencoder(options: BroadcastOptions): void {
		if (!this.options.cpuAdmission) return;
		const now = performance.now();
		this.#admitted = this.#admitted.filter((a) => a.until > now);
		const need = reencoderCoresFor(options.video, options.engine);
		const reserved = this.#admitted.reduce((sum, a) => sum + a.cores, 0);
		const idle = this.#cpu.idleCores - reserved;
		if (idle < need) {
			throw new CapacityExceededError(
				`no CPU left for another re-encoded broadcast: ${idle.toFixed(2)} of ${this.#cpu.cores} cores idle, its re-encoder needs about ${need.toFixed(2)}; try again later, use a smaller picture, or add a host`,
			);
		}
		this.#admitted.push({ cores: need, until: now + ADMISSION_RESERVE_MS });
	}

	async createBroadcast(input: BroadcastOptionsInput = {}): Promise<Broadcast> {
		if (this.#closed) throw new ClosedError('relay');
		const options = resolveBroadcastOptions(input, this.options.broadcastDefaults);
		// The libav engine brings its own libx264 (node-av's build); only the FFmpeg engine depends on this binary's.
		if (options.video.codec === 'H264' && options.mode === 'relay' && options.engine === 'ffmpeg' && !this.ffmpeg.encoders.libx264) {
			throw new ConflictError(`ffmpeg at ${this.ffmpeg.path} has no libx264; use VP8 output or an FFmpeg built with libx264`);
		}
		if (options.id && (this.#broadcasts.has(options.id) || this.#pending.has(options.id))) {
			throw new ConflictError(`broadcast "${options.id}" exists already; pick another id or delete it first`);
		}
		if (options.mode === 'relay') this.#admitReencoder(options);
		if (options.id) this.#pending.add(options.id);
		try {
			const broadcast = await Broadcast.create(options, {
				pool: this.#pool,
				ports: this.#ports,
				ffmpegPath: this.ffmpeg.path,
				budget: { consumersPerWorker: this.options.consumersPerWorker, consumersPerRouter: this.options.consumersPerRouter },
				transport: {
					listenIps: [{ ip: this.options.listenIp, ...(this.options.announcedIp ? { announcedIp: this.options.announcedIp } : {}) }],
					initialAvailableOutgoingBitrate: this.options.initialAvailableOutgoingBitrate,
					peerTimeoutMs: this.options.peerTimeoutMs,
				},
				restartBackoff: { initialMs: this.options.restartInitialMs, maxMs: this.options.restartMaxMs },
				silentPublisherMs: this.options.silentPublisherMs,
				workerConsumers: (workerIndex) => this.#workerConsumers(workerIndex),
				pickWorkers: () => this.#pickWorkers(),
				logger: this.logger,
			});
			if (this.#closed) {
				await broadcast.close();
				throw new ClosedError('relay');
			}
			this.#broadcasts.set(broadcast.id, broadcast);
			broadcast.on('viewerslost', (event) => this.emit('viewerslost', { broadcastId: broadcast.id, ...event }));
			broadcast.once('@close', () => {
				this.#broadcasts.delete(broadcast.id);
				this.emit('broadcastclosed', { id: broadcast.id });
			});
			this.emit('broadcastcreated', broadcast);
			return broadcast;
		} finally {
			if (options.id) this.#pending.delete(options.id);
		}
	}

	/** Ingest and encoder routers go on consecutive live workers, rotating per broadcast. */
	#pickWorkers(): { ingest: number; encoder: number } {
		const live = this.#pool.liveSlots.map((s) => s.index);
		if (live.length === 0) throw new ClosedError('every mediasoup worker');
		const at = this.#nextWorker++ % live.length;
		return { ingest: live[at]!, encoder: live[(at + 1) % live.length]! };
	}

	/** Consumers on a worker, summed over the broadcasts' fan-outs: the routers' tallies are the only count. */
	#workerConsumers(workerIndex: number): number {
		let sum = 0;
		for (const broadcast of this.#broadcasts.values()) sum += broadcast.fanOut.consumersOn(workerIndex);
		return sum;
	}

	async deleteBroadcast(id: string): Promise<void> {
		await this.broadcast(id).close();
	}

	workerLoad(): WorkerLoadInfo[] {
		return this.#pool.slots.map((slot) => ({
			index: slot.index,
			pid: slot.worker.pid,
			alive: !slot.worker.died && !slot.worker.closed,
			consumers: this.#workerConsumers(slot.index),
			budget: this.options.consumersPerWorker,
		}));
	}

	async getStats(): Promise<RelayStats> {
		return {
			ready: this.ready,
			workers: this.workerLoad(),
			broadcasts: await Promise.all([...this.#broadcasts.values()].map((b) => b.getStats())),
		};
	}

	/** Closes every broadcast (FFmpeg killed, ports freed) and every worker. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		await Promise.all([...this.#broadcasts.values()].map((b) => b.close()));
		await this.#pool.close();
		this.#cpu.close();
		this.removeAllListeners();
		this.logger.info('relay closed');
	}
}

/** How long a newly admitted re-encoder's expected load is reserved, ms: until the CPU window shows it. */
const ADMISSION_RESERVE_MS = 6000;

/** Starts a relay: resolves options, finds FFmpeg and starts the workers. */
export async function createRelay(options: RelayOptionsInput = {}): Promise<Relay> {
	return Relay.create(options);
}
