import { pino } from 'pino';
import { FfmpegProcess } from '../../src/ffmpeg/FfmpegProcess.js';
import { testSourceArgs } from '../../src/ffmpeg/args.js';
import { resolveFfmpeg } from '../../src/ffmpeg/binary.js';
import type { Broadcast } from '../../src/Broadcast.js';

export interface TestBroadcasterOptions {
	codec?: 'VP8' | 'H264';
	width?: number;
	height?: number;
	fps?: number;
	/** Broadcaster's own keyframe interval, seconds. Default 1. */
	keyframeIntervalSeconds?: number;
	audio?: boolean;
	bitrateKbps?: number;
}

/**
 * A synthetic broadcaster: FFmpeg's test pattern encoded in real time and sent
 * as plain RTP to the broadcast's RTP ingest, as an external encoder would.
 */
export async function startTestBroadcaster(broadcast: Broadcast, options: TestBroadcasterOptions = {}): Promise<FfmpegProcess> {
	const codec = options.codec ?? 'VP8';
	const audio = options.audio ?? true;
	const videoSsrc = 11111111;
	const audioSsrc = 22222222;
	const endpoints = await broadcast.ingestRtp([
		{ codec, payloadType: 100, ssrc: videoSsrc },
		...(audio ? [{ codec: 'opus', payloadType: 111, ssrc: audioSsrc }] : []),
	]);
	const video = endpoints.find((e) => e.kind === 'video')!;
	const audioEndpoint = endpoints.find((e) => e.kind === 'audio');
	const args = testSourceArgs({
		video: {
			codec,
			width: options.width ?? 640,
			height: options.height ?? 360,
			fps: options.fps ?? 30,
			bitrateKbps: options.bitrateKbps ?? 800,
			keyframeIntervalSeconds: options.keyframeIntervalSeconds ?? 1,
			threads: 1,
		},
		videoTarget: { host: video.ip, rtpPort: video.port, rtcpPort: video.rtcpPort, ssrc: videoSsrc, payloadType: 100 },
		...(audioEndpoint
			? { audioTarget: { host: audioEndpoint.ip, rtpPort: audioEndpoint.port, rtcpPort: audioEndpoint.rtcpPort, ssrc: audioSsrc, payloadType: 111 } }
			: {}),
	});
	const broadcaster = new FfmpegProcess({
		binary: resolveFfmpeg().path,
		args,
		logger: pino({ level: process.env.LOG_LEVEL ?? 'silent' }),
	});
	await broadcaster.start();
	return broadcaster;
}
