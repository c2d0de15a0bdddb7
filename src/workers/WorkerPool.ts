import { EventEmitter } from 'node:events';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { ClosedError } from '../errors.js';
import type { Logger } from '../logger.js';

export interface WorkerPoolOptions {
	/** Number of mediasoup workers (one CPU core each). */
	count: number;
	rtcMinPort: number;
	rtcMaxPort: number;
	logLevel: ms.WorkerLogLevel;
	logger: Logger;
	/** Delay before replacing a dead worker, doubled per failed attempt. */
	respawnDelayMs: number;
}

/** One place in the pool. The slot survives its worker: a dead worker is replaced in the same slot. */
export interface WorkerSlot {
	readonly index: number;
	worker: ms.Worker;
}

export interface WorkerPoolEvents {
	/** A worker died. Everything on it is gone; listeners drop what they had there. */
	workerdied: [{ index: number; pid: number; error: Error }];
	/** A dead worker's slot has a new, running worker. */
	workerreplaced: [WorkerSlot];
}

/**
 * Owns the mediasoup workers: starts one per slot, replaces any that dies, and
 * closes them all on close(). Nothing else creates or closes workers.
 */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
	readonly #options: WorkerPoolOptions;
	readonly #slots: WorkerSlot[] = [];
	readonly #abort = new AbortController();
	readonly #respawns = new Set<Promise<void>>();
	#closed = false;

	private constructor(options: WorkerPoolOptions) {
		super();
		this.#options = options;
	}

	static async create(options: WorkerPoolOptions): Promise<WorkerPool> {
		const pool = new WorkerPool(options);
		try {
			for (let index = 0; index < options.count; index++) {
				const worker = await pool.#createWorker(index);
				pool.#slots.push({ index, worker });
			}
		} catch (error) {
			await pool.close();
			throw error;
		}
		return pool;
	}

	get closed(): boolean {
		return this.#closed;
	}

	get slots(): readonly WorkerSlot[] {
		return this.#slots;
	}

	/** Slots whose worker is alive. */
	get liveSlots(): WorkerSlot[] {
		return this.#slots.filter((slot) => !slot.worker.died && !slot.worker.closed);
	}

	/** Workers being replaced right now; a relay is not ready while this is above zero. */
	get rebuilding(): number {
		return this.#respawns.size;
	}

	async #createWorker(index: number): Promise<ms.Worker> {
		const { rtcMinPort, rtcMaxPort, logLevel, logger } = this.#options;
		const worker = await mediasoup.createWorker({ rtcMinPort, rtcMaxPort, logLevel, appData: { index } });
		logger.info({ index, pid: worker.pid }, 'mediasoup worker started');
		worker.on('died', (error) => this.#onDied(index, worker, error));
		return worker;
	}

	#onDied(index: number, worker: ms.Worker, error: Error): void {
		if (this.#closed) return;
		this.#options.logger.error({ index, pid: worker.pid, err: error }, 'mediasoup worker died; replacing it');
		this.emit('workerdied', { index, pid: worker.pid, error });
		const respawn = this.#respawn(index).finally(() => this.#respawns.delete(respawn));
		this.#respawns.add(respawn);
	}

	async #respawn(index: number): Promise<void> {
		let delay = this.#options.respawnDelayMs;
		while (!this.#abort.signal.aborted) {
			try {
				const worker = await this.#createWorker(index);
				if (this.#closed) {
					worker.close();
					return;
				}
				const slot = this.#slots[index]!;
				slot.worker = worker;
				this.emit('workerreplaced', slot);
				return;
			} catch (error) {
				this.#options.logger.error({ index, err: error }, 'could not replace mediasoup worker; retrying');
				await new Promise((resolve) => setTimeout(resolve, delay));
				delay = Math.min(delay * 2, 10_000);
			}
		}
	}

	/** Resolves once no worker is being replaced. */
	async whenSettled(): Promise<void> {
		while (this.#respawns.size > 0) await Promise.all([...this.#respawns]);
	}

	/** The live slot with the given index, or throws if the pool is closed. */
	slot(index: number): WorkerSlot {
		if (this.#closed) throw new ClosedError('worker pool');
		return this.#slots[index]!;
	}

	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#abort.abort();
		for (const slot of this.#slots) slot.worker.close();
		await Promise.allSettled([...this.#respawns]);
		this.removeAllListeners();
	}
}
