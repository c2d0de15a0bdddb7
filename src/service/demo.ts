import { testSourceArgs } from '../ffmpeg/args.js';
import { FfmpegProcess } from '../ffmpeg/FfmpegProcess.js';
import type { Logger } from '../logger.js';
import type { Relay } from '../Relay.js';

export interface DemoBroadcast {
	readonly id: string;
	close(): Promise<void>;
}

const VIDEO_SSRC = 0x0d3d0001;
const AUDIO_SSRC = 0x0d3d0002;

/**
 * A demo broadcast so a newcomer sees video at once: FFmpeg's test pattern and
 * a tone, encoded as a broadcaster would (VP8, keyframe every 4 s) and sent
 * over plain RTP to the relay's RTP ingest. It is restarted if it dies.
 */
export async function startDemoBroadcast(relay: Relay, id: string, logger: Logger): Promise<DemoBroadcast> {
	const log = logger.child({ module: 'demo', broadcastId: id });
	const broadcast = await relay.createBroadcast({ id });
	const endpoints = await broadcast.ingestRtp([
		{ codec: 'VP8', payloadType: 96, ssrc: VIDEO_SSRC },
		{ codec: 'opus', payloadType: 111, ssrc: AUDIO_SSRC },
	]);
	const video = endpoints.find((e) => e.kind === 'video')!;
	const audio = endpoints.find((e) => e.kind === 'audio')!;
	const args = testSourceArgs({
		video: { codec: 'VP8', width: 1280, height: 720, fps: 30, bitrateKbps: 2000, keyframeIntervalSeconds: 4, threads: 1 },
		videoTarget: { host: video.ip, rtpPort: video.port, rtcpPort: video.rtcpPort, ssrc: VIDEO_SSRC, payloadType: 96 },
		audioTarget: { host: audio.ip, rtpPort: audio.port, rtcpPort: audio.rtcpPort, ssrc: AUDIO_SSRC, payloadType: 111 },
	});
	let closed = false;
	let current: FfmpegProcess | undefined;
	const start = async (): Promise<void> => {
		const source = new FfmpegProcess({ binary: relay.ffmpeg.path, args, logger: log });
		current = source;
		source.on('died', () => {
			if (!closed) setTimeout(() => void start().catch((error: unknown) => log.error({ err: error }, 'demo source did not restart')), 1000);
		});
		await source.start();
	};
	await start();
	log.info({ watch: `/watch/${id}` }, 'demo broadcast started');
	return {
		id,
		async close() {
			closed = true;
			await current?.close();
		},
	};
}
