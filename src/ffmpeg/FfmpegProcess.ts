import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { FfmpegNotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';

/** One `-progress` block of FFmpeg, emitted about once a second. */
export interface FfmpegProgress {
	frame: number;
	/** Frames per second over the last block (FFmpeg's own figure is an average since start). */
	fps: number;
	/** Output bitrate over the last block, kbit/s. */
	bitrateKbps: number;
	/** Encoding speed relative to real time (1 = real time). */
	speed: number;
	dropFrames: number;
	dupFrames: number;
}

export interface FfmpegProcessOptions {
	binary: string;
	args: string[];
	/** Written to FFmpeg's stdin and then closed (the input SDP). */
	stdin?: string;
	logger: Logger;
	/** How long to wait after SIGTERM before SIGKILL. Default 2000 ms. */
	killTimeoutMs?: number;
}

export interface FfmpegProcessEvents {
	/** FFmpeg stopped without being asked to. */
	died: [{ code: number | null; signal: NodeJS.Signals | null }];
	progress: [FfmpegProgress];
	/** FFmpeg could not decode for want of a keyframe (it started mid-GOP, or input was lost). */
	needskeyframe: [];
}

const NEEDS_KEYFRAME = /without a prior keyframe|Error while decoding|missing reference|non-existing PPS|no frame!/i;

// Linux's parent-death signal kills FFmpeg if this Node process is killed with
// SIGKILL and never gets to clean up. setpriv (util-linux) sets it before exec.
export const SETPRIV = (() => {
	try {
		accessSync('/usr/bin/setpriv', constants.X_OK);
		return process.platform === 'linux' ? '/usr/bin/setpriv' : undefined;
	} catch {
		return undefined;
	}
})();

function parseNumber(value: string | undefined): number {
	const parsed = Number.parseFloat(value ?? '');
	return Number.isFinite(parsed) ? parsed : 0;
}

/**
 * One FFmpeg child process, handled the way mediasoup's Worker handles its
 * worker: explicit stdio, "failed to start" told apart from "died later",
 * stderr to the logger line by line, and a close() that sends SIGTERM, escalates
 * to SIGKILL and waits for the exit.
 */
export class FfmpegProcess extends EventEmitter<FfmpegProcessEvents> {
	readonly #options: FfmpegProcessOptions;
	#child?: ChildProcess;
	#exited?: Promise<void>;
	#closing = false;
	#closed = false;
	#lastStderr: string[] = [];

	constructor(options: FfmpegProcessOptions) {
		super();
		this.#options = options;
	}

	get pid(): number | undefined {
		return this.#child?.pid;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** The last lines FFmpeg wrote to stderr, for error messages. */
	get lastStderr(): readonly string[] {
		return this.#lastStderr;
	}

	/** Spawns FFmpeg; resolves once it runs, rejects with FfmpegNotFoundError if it cannot start. */
	async start(): Promise<void> {
		const { binary, args, logger } = this.#options;
		const [command, argv] = SETPRIV
			? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', binary, ...args]]
			: [binary, args];
		logger.debug({ binary, args: args.join(' ') }, 'spawning ffmpeg');
		const child = spawn(command, argv, {
			stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
			detached: false,
			windowsHide: true,
		});
		this.#child = child;

		await new Promise<void>((resolve, reject) => {
			const onSpawn = (): void => {
				child.off('error', onError);
				resolve();
			};
			const onError = (error: Error): void => {
				child.off('spawn', onSpawn);
				reject(
					new FfmpegNotFoundError(`ffmpeg "${binary}" failed to start: ${error.message}; check ffmpegPath`, {
						cause: error,
					}),
				);
			};
			child.once('spawn', onSpawn);
			child.once('error', onError);
		});

		// After a successful spawn, errors (EPIPE on stdin and the like) are not fatal on their own: the exit tells.
		child.on('error', (error) => logger.warn({ err: error }, 'ffmpeg process error'));
		child.stdin?.on('error', () => undefined);
		child.stdin?.end(this.#options.stdin ?? '');

		this.#exited = new Promise((resolve) => {
			child.once('exit', (code, signal) => {
				this.#closed = true;
				resolve();
				if (!this.#closing) {
					logger.warn({ code, signal, stderr: this.#lastStderr.slice(-5) }, 'ffmpeg exited unexpectedly');
					this.emit('died', { code, signal });
				}
			});
		});

		this.#readStderr(child.stderr!);
		this.#readProgress(child.stdio[3] as Readable);
	}

	#readStderr(stream: Readable): void {
		const { logger } = this.#options;
		createInterface({ input: stream }).on('line', (line) => {
			if (!line.trim()) return;
			this.#lastStderr.push(line);
			if (this.#lastStderr.length > 20) this.#lastStderr.shift();
			const level = /^\[(?:[^\]]*\] )?\[(\w+)\]/.exec(line)?.[1] ?? /\[(error|fatal|warning|info|verbose|debug)\]/.exec(line)?.[1];
			const message = line.replace(/\[(error|fatal|warning|info|verbose|debug)\]\s*/, '');
			if (NEEDS_KEYFRAME.test(message)) this.emit('needskeyframe');
			if (level === 'error' || level === 'fatal') logger.error({ ffmpeg: message }, 'ffmpeg');
			else if (level === 'warning') logger.warn({ ffmpeg: message }, 'ffmpeg');
			else logger.debug({ ffmpeg: message }, 'ffmpeg');
		});
	}

	#readProgress(stream: Readable | undefined): void {
		if (!stream) return;
		let block: Record<string, string> = {};
		let previous: { at: number; frame: number; bytes: number } | undefined;
		createInterface({ input: stream }).on('line', (line) => {
			const eq = line.indexOf('=');
			if (eq < 0) return;
			const key = line.slice(0, eq).trim();
			const value = line.slice(eq + 1).trim();
			if (key !== 'progress') {
				block[key] = value;
				return;
			}
			const now = performance.now();
			const frame = parseNumber(block.frame);
			const bytes = parseNumber(block.total_size);
			const seconds = previous ? (now - previous.at) / 1000 : 0;
			const fps = previous && seconds > 0 ? (frame - previous.frame) / seconds : parseNumber(block.fps);
			const bitrateKbps = previous && seconds > 0 ? ((bytes - previous.bytes) * 8) / seconds / 1000 : parseNumber(block.bitrate);
			previous = { at: now, frame, bytes };
			this.emit('progress', {
				frame,
				fps: Math.round(fps * 10) / 10,
				bitrateKbps: Math.round(bitrateKbps),
				speed: parseNumber(block.speed),
				dropFrames: parseNumber(block.drop_frames),
				dupFrames: parseNumber(block.dup_frames),
			});
			block = {};
		});
	}

	/** Stops FFmpeg: SIGTERM, then SIGKILL after killTimeoutMs; resolves when it has exited. Idempotent. */
	async close(): Promise<void> {
		const child = this.#child;
		if (!child || !this.#exited) {
			this.#closed = true;
			return;
		}
		if (!this.#closing) {
			this.#closing = true;
			this.removeAllListeners('died');
			this.removeAllListeners('progress');
			this.removeAllListeners('needskeyframe');
			if (child.exitCode === null && child.signalCode === null) {
				child.kill('SIGTERM');
				const timer = setTimeout(() => child.kill('SIGKILL'), this.#options.killTimeoutMs ?? 2000);
				timer.unref();
				void this.#exited.then(() => clearTimeout(timer));
			}
		}
		await this.#exited;
	}

	/** Kills FFmpeg without cleanup, as a crash would. For tests and fault drills. */
	kill(signal: NodeJS.Signals = 'SIGKILL'): void {
		this.#child?.kill(signal);
	}
}
