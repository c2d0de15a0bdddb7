/**
 * The libav engine process: one per re-encoded broadcast, started by
 * LibavEngine over IPC. Video and audio of the broadcast live here together so
 * they share one clock (audio is held back by the video's measured latency).
 * Exits when its parent goes away.
 */
import { AudioTrack } from './AudioTrack.js';
import type { ChildMessage, ParentMessage, TrackKind, TrackWiring } from './protocol.js';
import { VideoTrack } from './VideoTrack.js';

if (!process.send) {
	process.stderr.write('the libav engine runs as a child of the relay (over IPC); it is not a command\n');
	process.exit(2);
}

const STATS_INTERVAL_MS = 1000;

function send(message: ChildMessage): void {
	if (process.connected) process.send!(message);
}

const log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>): void =>
	send({ type: 'log', level, message, ...(data ? { data } : {}) });

let video: VideoTrack | undefined;
let audio: AudioTrack | undefined;
const starting = new Map<TrackKind, Promise<void>>();

async function add(wiring: TrackWiring): Promise<void> {
	const { kind } = wiring;
	await remove(kind);
	try {
		if (kind === 'video') {
			video = await VideoTrack.create(wiring, {
				upstreamKeyframe: (reason) => send({ type: 'upstreamkeyframe', kind, reason }),
				log,
			});
		} else {
			audio = await AudioTrack.create(wiring, () => video?.latencyMs ?? 0, { log });
		}
		send({ type: 'added', kind });
	} catch (error) {
		const port = (error as { port?: number }).port;
		send({ type: 'failed', kind, message: `${(error as Error).message}${port ? ` (port ${port})` : ''}` });
	}
}

async function remove(kind: TrackKind): Promise<void> {
	if (kind === 'video') {
		const track = video;
		video = undefined;
		await track?.close();
	} else {
		const track = audio;
		audio = undefined;
		await track?.close();
	}
}

process.on('message', (message: ParentMessage) => {
	switch (message.type) {
		case 'add': {
			const previous = starting.get(message.track.kind) ?? Promise.resolve();
			const next = previous.then(() => add(message.track));
			starting.set(message.track.kind, next);
			break;
		}
		case 'remove':
			void remove(message.kind);
			break;
		case 'keyframe':
			video?.requestKeyframe();
			break;
	}
});

const statsTimer = setInterval(() => {
	if (video) send({ type: 'stats', stats: video.stats });
	if (audio) send({ type: 'stats', stats: audio.stats });
}, STATS_INTERVAL_MS);

let exiting = false;
async function exit(code: number): Promise<void> {
	if (exiting) return;
	exiting = true;
	clearInterval(statsTimer);
	await Promise.allSettled([remove('video'), remove('audio')]);
	process.exit(code);
}

// The relay is gone (closed us, or died: the IPC channel closes with it): nothing to serve any more.
process.on('disconnect', () => void exit(0));
process.on('SIGTERM', () => void exit(0));
process.on('uncaughtException', (error) => {
	log('error', 'libav engine crashed', { err: String(error?.stack ?? error) });
	void exit(1);
});

send({ type: 'ready' });
