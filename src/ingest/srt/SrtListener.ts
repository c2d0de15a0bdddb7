/**
 * The SRT ingest: one UDP port in SRT listener mode, served by FFmpeg (Debian's
 * build has libsrt; Node has no SRT stack of its own). FFmpeg accepts one
 * caller, checks its passphrase, logs its streamid (at verbose level: "accept
 * streamid [...]"), and remuxes its MPEG-TS (H264 + AAC) to FLV on stdout, which
 * goes through the same FLV path as RTMP. When the caller leaves (or is refused),
 * FFmpeg exits and a new one listens again.
 *
 * Limit, from FFmpeg's libsrt listener: one caller at a time per port. A second
 * caller while one publishes is not answered until the first has left.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { InvalidOptionError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { FlvStreamReader } from '../live/flv.js';
import type { LiveSink } from '../rtmp/RtmpSession.js';
import { redactStreamId } from './streamId.js';
import { ffmpegProtocolsArgs, srtListenerArgs } from '../../ffmpeg/args.js';
import { SETPRIV } from '../../ffmpeg/FfmpegProcess.js';

export interface SrtListenerOptions {
	ffmpegPath: string;
	host: string;
	port: number;
	/** SRT passphrase (10-79 characters); callers without it are refused by SRT itself. */
	passphrase?: string;
	/** SRT receiver latency, ms. */
	latencyMs: number;
	/** Decides on a caller by its streamid: resolves with the sink for its media, or rejects to refuse it (the message is logged). */
	onPublish(request: { streamId: string; remote: string; disconnect(reason: string): void }): Promise<LiveSink>;
	logger: Logger;
}


const STREAM_ID = /accept streamid \[(.*)\], length (\d+)/;
/** FLV bytes held while the publish is being decided. */
const MAX_EARLY_BYTES = 4 * 1024 * 1024;
const RESTART_MIN_MS = 200;
const RESTART_MAX_MS = 5000;

export class SrtListener {
	readonly #options: SrtListenerOptions;
	readonly #logger: Logger;
	#child?: ChildProcess;
	#exited?: Promise<void>;
	#closed = false;
	#restartTimer?: NodeJS.Timeout;
	#restartDelay = RESTART_MIN_MS;
	#callers = 0;

	private constructor(options: SrtListenerOptions) {
		this.#options = options;
		this.#logger = options.logger.child({ module: 'SrtListener', port: options.port });
	}

	/** Checks the port is free, then starts listening. */
	static async create(options: SrtListenerOptions): Promise<SrtListener> {
		if (options.passphrase !== undefined && (options.passphrase.length < 10 || options.passphrase.length > 79)) {
			throw new InvalidOptionError('srt.passphrase must be 10 to 79 characters (SRT refuses others)');
		}
		await checkSrtSupport(options.ffmpegPath);
		await checkUdpPortFree(options.host, options.port);
		const listener = new SrtListener(options);
		listener.#spawn();
		listener.#logger.info({ host: options.host, encrypted: Boolean(options.passphrase) }, 'SRT ingest listening (one caller at a time)');
		return listener;
	}

	get port(): number {
		return this.#options.port;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** Callers that have connected so far (accepted by SRT, whatever their streamid). */
	get callers(): number {
		return this.#callers;
	}

	/** The FFmpeg listening now (for tests), if any. */
	get pid(): number | undefined {
		return this.#child?.pid;
	}

	#spawn(): void {
		if (this.#closed) return;
		const { ffmpegPath } = this.#options;
		const args = srtListenerArgs(this.#options);
		const [command, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', ffmpegPath, ...args]] : [ffmpegPath, args];
		const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
		this.#child = child;
		const startedAt = performance.now();
		let sink: LiveSink | undefined;
		let deciding = false;
		let ended = false;
		let streamId: string | undefined;
		let early: Buffer[] = [];
		let earlyBytes = 0;
		const stderrTail: string[] = [];
		const end = (reason: string, level: 'info' | 'warn' = 'info'): void => {
			if (ended) return;
			ended = true;
			if (streamId !== undefined) this.#logger[level]({ streamId: redactStreamId(streamId), reason }, 'SRT caller ended');
			const current = sink;
			sink = undefined;
			current?.end(reason);
			if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
		};
		const reader = new FlvStreamReader((type, timestamp, body) => sink?.tag(type, timestamp, body));
		const feed = (chunk: Buffer): void => {
			try {
				reader.push(chunk);
			} catch (error) {
				end(`media refused: ${(error as Error).message}`, 'warn');
			}
		};
		const decide = (id: string): void => {
			if (deciding || ended) return;
			deciding = true;
			streamId = id;
			this.#callers += 1;
			this.#restartDelay = RESTART_MIN_MS;
			this.#options.onPublish({ streamId: id, remote: `srt :${this.#options.port}`, disconnect: (reason) => end(reason) }).then(
				(accepted) => {
					if (ended) {
						accepted.end('caller left before publishing started');
						return;
					}
					sink = accepted;
					this.#logger.info({ streamId: redactStreamId(id) }, 'SRT publish started');
					const held = early;
					early = [];
					for (const chunk of held) feed(chunk);
				},
				(error: unknown) => end(`publish refused: ${(error as Error).message}`, 'warn'),
			);
		};
		child.stdout!.on('data', (chunk: Buffer) => {
			if (ended) return;
			// FFmpeg writes the streamid line before its output starts; data with none seen is a caller without one.
			if (!deciding) decide(streamId ?? '');
			if (sink) return feed(chunk);
			earlyBytes += chunk.length;
			if (earlyBytes > MAX_EARLY_BYTES) return end('too much media before the publish was decided', 'warn');
			early.push(chunk);
		});
		createInterface({ input: child.stderr! }).on('line', (line) => {
			// FFmpeg names its input URL in errors: the passphrase stays out of the log.
			stderrTail.push(line.replace(/passphrase=[^&\s]*/g, 'passphrase=[redacted]'));
			if (stderrTail.length > 8) stderrTail.shift();
			const match = STREAM_ID.exec(line);
			if (match) return decide(match[1]!);
			if (/not compatible with flv|Could not write header|Unsupported codec|codec not currently supported/i.test(line)) {
				end(`the caller's stream cannot be taken (${stderrTail.at(-1)!.trim().slice(0, 160)}); send H264 video and AAC audio in MPEG-TS`, 'warn');
			}
		});
		child.on('error', (error) => this.#logger.error({ err: error }, 'SRT listener FFmpeg failed to start'));
		this.#exited = new Promise<void>((resolve) => {
			child.once('close', (code, signal) => {
				end(code === 0 ? 'the caller ended the stream' : 'the caller disconnected');
				if (this.#child === child) this.#child = undefined;
				resolve();
				if (this.#closed) return;
				if (streamId === undefined && performance.now() - startedAt < 1000) {
					// Exited without a caller, at once: it cannot listen. Keep trying, less and less often.
					this.#logger.error({ code, signal, stderr: stderrTail }, `SRT listener FFmpeg exited at once; retrying in ${this.#restartDelay} ms`);
					this.#restartDelay = Math.min(RESTART_MAX_MS, this.#restartDelay * 2);
				}
				this.#restartTimer = setTimeout(() => this.#spawn(), streamId === undefined ? this.#restartDelay : RESTART_MIN_MS);
			});
		});
	}

	/** Stops listening: ends a caller and its FFmpeg, and waits for it to exit. Idempotent. */
	async close(): Promise<void> {
		this.#closed = true;
		clearTimeout(this.#restartTimer);
		const child = this.#child;
		if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
		await this.#exited;
	}
}

/** Fails with a configuration error when something holds the UDP port already. */
async function checkUdpPortFree(host: string, port: number): Promise<void> {
	const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
	try {
		await new Promise<void>((resolve, reject) => {
			socket.once('error', reject);
			socket.bind({ address: host, port, exclusive: true }, () => resolve());
		});
	} catch (error) {
		const code = (error as NodeJS.ErrnoException).code;
		throw new InvalidOptionError(
			code === 'EADDRINUSE'
				? `cannot listen for SRT on ${host}:${port}: the UDP port is in use; set srt.port (BROADCAST_RELAY_SRT_PORT) to another, or stop what holds it`
				: `cannot listen for SRT on ${host}:${port}: ${(error as Error).message}`,
		);
	} finally {
		await new Promise<void>((resolve) => {
			try {
				socket.close(() => resolve());
			} catch {
				resolve();
			}
		});
	}
}

/** Fails with a configuration error when the FFmpeg binary was built without libsrt (ffmpeg-static builds, some distributions). */
async function checkSrtSupport(ffmpegPath: string): Promise<void> {
	const output = await new Promise<string>((resolve) => {
		execFile(ffmpegPath, ffmpegProtocolsArgs(), { timeout: 10_000 }, (error, stdout) => resolve(error ? '' : stdout));
	});
	const input = output.split(/Output:/)[0] ?? '';
	if (!/^\s*srt\s*$/m.test(input)) {
		throw new InvalidOptionError(`the FFmpeg at ${ffmpegPath} has no SRT support (libsrt) or does not run; install Debian's ffmpeg (it has libsrt) and point ffmpegPath at it, or turn srt.enabled off`);
	}
}
