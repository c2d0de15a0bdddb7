import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EngineError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { ChildMessage, EngineTrackStats, ParentMessage, TrackKind, TrackWiring } from './protocol.js';

/** The engine process must say it is ready within this long (loading node-av's libraries), ms. */
const READY_TIMEOUT_MS = 15_000;
/** A track must be running within this long of being sent, ms. */
const ADD_TIMEOUT_MS = 10_000;
/** SIGTERM to SIGKILL when closing, ms: a live engine has nothing to finish. */
const KILL_TIMEOUT_MS = 300;

export interface LibavEngineOptions {
	logger: Logger;
	restartBackoff: { initialMs: number; maxMs: number };
}

export interface LibavEngineEvents {
	/** The engine process died and was started again; its tracks were added back. */
	restarted: [{ restarts: number; pid: number | undefined }];
	/** A track needs a keyframe from the broadcaster (rate-limited by the engine). */
	upstreamkeyframe: [{ kind: TrackKind; reason: string }];
	/** About once a second per track. */
	stats: [EngineTrackStats];
}

interface AttachedTrack {
	/** Called at attach and again after every restart: the track's wiring may change (ports moved, sequence numbers continued). */
	wiring: (restart: boolean) => Promise<TrackWiring>;
	stats?: EngineTrackStats;
}

/** Entry point of the engine process: the compiled child.js, or child.ts run through tsx (tests run the sources). */
function childEntry(): { path: string; execArgv: string[] } {
	const fromSources = import.meta.url.endsWith('.ts');
	return {
		path: fileURLToPath(new URL(fromSources ? './child.ts' : './child.js', import.meta.url)),
		execArgv: fromSources ? ['--import', 'tsx'] : [],
	};
}

/**
 * The libav engine of one broadcast, seen from the relay: a child process
 * (src/reencoder/libav/child.ts) running every re-encoded track of the
 * broadcast, supervised the way FFmpeg is: if it dies it is started again with
 * backoff and given its tracks again (same SSRCs, sequence numbers continued),
 * so the re-encoded producers and every viewer's consumer stay as they are.
 * Owns only the process; the tracks' transports and ports belong to their
 * TrackReencoders.
 */
export class LibavEngine extends EventEmitter<LibavEngineEvents> {
	readonly #options: LibavEngineOptions;
	readonly #logger: Logger;
	readonly #tracks = new Map<TrackKind, AttachedTrack>();
	readonly #abort = new AbortController();
	#child?: ChildProcess;
	#restartLoop?: Promise<void>;
	#restarts = 0;
	#closed = false;
	/** Waiters for 'added'/'failed' of a kind in the current process. */
	readonly #adding = new Map<TrackKind, { resolve: () => void; reject: (error: Error) => void }>();

	private constructor(options: LibavEngineOptions) {
		super();
		this.#options = options;
		this.#logger = options.logger.child({ module: 'LibavEngine' });
	}

	static async create(options: LibavEngineOptions): Promise<LibavEngine> {
		const engine = new LibavEngine(options);
		try {
			await engine.#spawn();
		} catch (error) {
			await engine.close();
			throw error;
		}
		return engine;
	}

	get pid(): number | undefined {
		return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
	}

	get running(): boolean {
		return this.pid !== undefined && !this.#restartLoop;
	}

	get restarts(): number {
		return this.#restarts;
	}

	get closed(): boolean {
		return this.#closed;
	}

	stats(kind: TrackKind): EngineTrackStats | undefined {
		return this.#tracks.get(kind)?.stats;
	}

	/** Starts a track in the engine; `wiring` is asked again after every restart. Throws EngineError if it cannot start. */
	async attach(kind: TrackKind, wiring: (restart: boolean) => Promise<TrackWiring>): Promise<void> {
		if (this.#closed) throw new EngineError('the libav engine is closed; create the broadcast again');
		const track: AttachedTrack = { wiring };
		this.#tracks.set(kind, track);
		// During a restart the loop adds every attached track, this one included.
		if (this.#restartLoop) return;
		try {
			await this.#add(await wiring(false));
		} catch (error) {
			if (this.#tracks.get(kind) === track) this.#tracks.delete(kind);
			throw error;
		}
	}

	/** Stops a track in the engine (its transports are closed by their owner). */
	detach(kind: TrackKind): void {
		if (!this.#tracks.delete(kind)) return;
		this.#send({ type: 'remove', kind });
	}

	/** Makes the next video picture a keyframe, as a viewer's PLI would (coalesced the same way). */
	requestKeyframe(): void {
		this.#send({ type: 'keyframe' });
	}

	#send(message: ParentMessage): void {
		if (this.#child?.connected) this.#child.send(message);
	}

	async #spawn(): Promise<void> {
		const entry = childEntry();
		const child = fork(entry.path, [], {
			execArgv: entry.execArgv,
			serialization: 'advanced',
			stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
		});
		this.#child = child;
		// Native libraries write here (libvpx's banner, a crash report): keep it in the log.
		createInterface({ input: child.stderr! }).on('line', (line) => this.#logger.debug({ pid: child.pid }, `engine: ${line}`));
		child.on('message', (message: ChildMessage) => this.#onMessage(message));
		const ready = new Promise<void>((resolve, reject) => {
			const timer = setTimeout(() => reject(new EngineError(`the libav engine did not start within ${READY_TIMEOUT_MS / 1000} s; check that node-av is installed (npm ls node-av)`)), READY_TIMEOUT_MS);
			child.once('message', () => {
				clearTimeout(timer);
				resolve();
			});
			child.once('exit', (code, signal) => {
				clearTimeout(timer);
				reject(new EngineError(`the libav engine exited at start (code ${code}, signal ${signal}); run with LOG_LEVEL=debug to see its output`));
			});
			child.once('error', (error) => {
				clearTimeout(timer);
				reject(new EngineError(`could not start the libav engine: ${error.message}`, { cause: error }));
			});
		});
		child.once('exit', (code, signal) => this.#onExit(child, code, signal));
		await ready;
		this.#logger.debug({ pid: child.pid }, 'libav engine started');
	}

	#onMessage(message: ChildMessage): void {
		switch (message.type) {
			case 'added':
				this.#adding.get(message.kind)?.resolve();
				break;
			case 'failed':
				this.#adding.get(message.kind)?.reject(new EngineError(`the libav engine could not start the ${message.kind} track: ${message.message}`));
				break;
			case 'stats': {
				const track = this.#tracks.get(message.stats.kind);
				if (track) track.stats = message.stats;
				this.emit('stats', message.stats);
				break;
			}
			case 'upstreamkeyframe':
				this.emit('upstreamkeyframe', { kind: message.kind, reason: message.reason });
				break;
			case 'log':
				this.#logger[message.level]({ ...(message.data ?? {}), pid: this.#child?.pid }, message.message);
				break;
			case 'ready':
				break;
		}
	}

	async #add(wiring: TrackWiring): Promise<void> {
		const { kind } = wiring;
		const done = new Promise<void>((resolve, reject) => {
			const timer = setTimeout(() => reject(new EngineError(`the libav engine did not start the ${kind} track within ${ADD_TIMEOUT_MS / 1000} s`)), ADD_TIMEOUT_MS);
			const settle = (): void => {
				clearTimeout(timer);
				this.#adding.delete(kind);
			};
			this.#adding.set(kind, {
				resolve: () => {
					settle();
					resolve();
				},
				reject: (error) => {
					settle();
					reject(error);
				},
			});
		});
		this.#send({ type: 'add', track: wiring });
		await done;
	}

	#onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
		if (child !== this.#child) return;
		for (const waiter of this.#adding.values()) waiter.reject(new EngineError(`the libav engine exited (code ${code}, signal ${signal})`));
		if (this.#closed || this.#restartLoop) return;
		this.#logger.warn({ code, signal, pid: child.pid }, 'libav engine died; restarting it');
		this.#restartLoop = this.#restartWithBackoff().finally(() => {
			this.#restartLoop = undefined;
		});
	}

	async #restartWithBackoff(): Promise<void> {
		const { initialMs, maxMs } = this.#options.restartBackoff;
		// The first attempt at once: every viewer's video is frozen until the engine is back.
		let delay = 0;
		while (!this.#abort.signal.aborted) {
			if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
			if (this.#abort.signal.aborted) return;
			this.#restarts += 1;
			try {
				await this.#spawn();
				// Every track at once: video and audio come back together, and sooner.
				await Promise.all(
					[...this.#tracks].map(async ([kind, track]) => {
						const wiring = await track.wiring(true);
						if (this.#tracks.get(kind) === track) await this.#add(wiring);
					}),
				);
				this.#logger.info({ restarts: this.#restarts, pid: this.#child?.pid }, 'libav engine restarted');
				this.emit('restarted', { restarts: this.#restarts, pid: this.#child?.pid });
				return;
			} catch (error) {
				this.#logger.error({ err: error }, 'libav engine restart failed; backing off');
				this.#kill();
				delay = delay === 0 ? initialMs : Math.min(delay * 2, maxMs);
			}
		}
	}

	#kill(): void {
		const child = this.#child;
		if (!child || child.exitCode !== null || child.signalCode !== null) return;
		child.kill('SIGKILL');
	}

	/** Stops the engine process. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#abort.abort();
		await this.#restartLoop;
		const child = this.#child;
		if (child && child.exitCode === null && child.signalCode === null) {
			const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
			child.kill('SIGTERM');
			const timer = setTimeout(() => child.kill('SIGKILL'), KILL_TIMEOUT_MS);
			await exited;
			clearTimeout(timer);
		}
		this.#tracks.clear();
		this.removeAllListeners();
	}
}
