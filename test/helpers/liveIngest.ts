import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import type { Relay } from '../../src/Relay.js';
import { LiveIngest } from '../../src/ingest/live/LiveIngest.js';
import { PublishRefusedError } from '../../src/ingest/rtmp/RtmpSession.js';
import { RtmpServer } from '../../src/ingest/rtmp/RtmpServer.js';
import { SrtListener } from '../../src/ingest/srt/SrtListener.js';

export const STREAM_KEY = 'rtmp-test-key-1234';
/** Small pictures keep the 2 shared cores free enough for the relay, the engine and the publisher. */
export const SMALL = { width: 320, height: 180, fps: 15, bitrateKbps: 300, keyframeIntervalSeconds: 20 } as const;

export const testLogger = () => pino({ level: process.env.LOG_LEVEL ?? 'silent' });

/** A LiveIngest on `relay` that takes STREAM_KEY only, creating broadcasts it does not find (relay mode, small). */
export function liveIngestFor(relay: Relay, options: { graceMs?: number; logger?: ReturnType<typeof testLogger>; engine?: 'libav' | 'ffmpeg' } = {}): LiveIngest {
	return new LiveIngest({
		withBroadcast: async (id, use) => {
			const existing = relay.broadcasts.get(id);
			if (existing) return use(existing, false);
			const created = await relay.createBroadcast({ id, engine: options.engine ?? 'libav', video: SMALL });
			try {
				return await use(created, true);
			} catch (error) {
				await created.close();
				throw error;
			}
		},
		authorize: ({ key }) => {
			if (key !== STREAM_KEY) throw new PublishRefusedError(key ? 'the stream key is not valid' : 'no stream key', 'NetStream.Publish.Unauthorized');
		},
		host: '127.0.0.1',
		graceMs: options.graceMs ?? 10_000,
		silentPublisherMs: 3000,
		audioBitrateKbps: 64,
		logger: options.logger ?? testLogger(),
	});
}

export async function rtmpServerFor(live: LiveIngest, logger = testLogger()): Promise<RtmpServer> {
	return RtmpServer.create({ host: '127.0.0.1', port: 0, onPublish: (request) => live.publishRtmp(request), logger, publishTimeoutMs: 3000, idleTimeoutMs: 10_000 });
}

/** FFmpeg's arguments for a test pattern with a sine tone, H264 (libx264, a keyframe every `gop` frames) and AAC. */
export function testPatternArgs(options: { gop?: number; audio?: boolean; bframes?: boolean } = {}): string[] {
	const { gop = 30, audio = true, bframes = true } = options;
	return [
		'-hide_banner', '-nostats', '-loglevel', 'error',
		'-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15',
		...(audio ? ['-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'] : []),
		'-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', ...(bframes ? ['-bf', '2'] : []), '-g', String(gop), '-b:v', '300k', '-pix_fmt', 'yuv420p', '-threads', '1',
		...(audio ? ['-c:a', 'aac', '-b:a', '64k'] : []),
	];
}

/** An FFmpeg publisher; `stop()` kills it and waits for its exit. */
export class FfmpegPublisher {
	readonly child: ChildProcess;
	readonly startedAt = performance.now();
	stderr = '';
	readonly exited: Promise<number | null>;

	constructor(args: string[]) {
		this.child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
		this.child.stderr!.on('data', (d: Buffer) => {
			if (this.stderr.length < 10_000) this.stderr += d.toString();
		});
		this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
	}

	static rtmp(url: string, options: Parameters<typeof testPatternArgs>[0] = {}): FfmpegPublisher {
		return new FfmpegPublisher([...testPatternArgs(options), '-f', 'flv', url]);
	}

	static srt(url: string, options: Parameters<typeof testPatternArgs>[0] = {}): FfmpegPublisher {
		return new FfmpegPublisher([...testPatternArgs(options), '-f', 'mpegts', url]);
	}

	async stop(): Promise<void> {
		if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
		await this.exited;
	}
}

export async function srtListenerFor(live: LiveIngest, options: { port: number; passphrase?: string; logger?: ReturnType<typeof testLogger> }): Promise<SrtListener> {
	return SrtListener.create({
		ffmpegPath: 'ffmpeg',
		host: '127.0.0.1',
		port: options.port,
		passphrase: options.passphrase,
		latencyMs: 120,
		onPublish: (request) => live.publishSrt(request),
		logger: options.logger ?? testLogger(),
	});
}

export async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
	const deadline = performance.now() + timeoutMs;
	while (!predicate()) {
		if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

/**
 * A free UDP port on loopback (bound and released), from 50000-60999: outside the relay's default
 * RTC range (40000-49999), which the service refuses for srt.port, and its FFmpeg range.
 */
export async function freeUdpPort(): Promise<number> {
	const { createSocket } = await import('node:dgram');
	for (let attempt = 0; attempt < 50; attempt++) {
		const port = 50_000 + Math.floor(Math.random() * 11_000);
		const socket = createSocket('udp4');
		const bound = await new Promise<boolean>((resolve) => {
			socket.once('error', () => resolve(false));
			socket.bind({ address: '127.0.0.1', port, exclusive: true }, () => resolve(true));
		});
		await new Promise<void>((resolve) => {
			try {
				socket.close(() => resolve());
			} catch {
				resolve();
			}
		});
		if (bound) return port;
	}
	throw new Error('no free UDP port in 50000-60999');
}
