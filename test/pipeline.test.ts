import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRelay, type Relay } from '../src/index.js';
import { startTestBroadcaster } from './helpers/testBroadcaster.js';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import type { FfmpegProcess } from '../src/ffmpeg/FfmpegProcess.js';
import { ENGINES, useRelayFixture } from './helpers/fixture.js';

describe.each(ENGINES)('relay pipeline (%s engine): synthetic broadcaster → re-encoder → werift viewer', (engine) => {
	let relay: Relay;
	let broadcaster: FfmpegProcess | undefined;
	const viewers: WeriftViewer[] = [];

	beforeEach(async () => {
		relay = await createRelay({ workers: 2 });
	});

	afterEach(async () => {
		await Promise.all(viewers.splice(0).map((v) => v.close()));
		await broadcaster?.close();
		await relay.close();
	});

	it('delivers frames continuously with keyframes at the configured interval', async () => {
		const broadcast = await relay.createBroadcast({
			id: 'pipeline',
			engine,
			video: { width: 640, height: 360, fps: 30, bitrateKbps: 800, keyframeIntervalSeconds: 1 },
		});
		broadcaster = await startTestBroadcaster(broadcast, { keyframeIntervalSeconds: 1 });
		const viewer = new WeriftViewer();
		viewers.push(viewer);
		await viewer.connect(async (offer) => (await broadcast.addViewer(offer)).answer);

		await viewer.waitFor(() => viewer.keyframeTimes.length >= 1, 15_000, 'the first keyframe');
		// Start-up keyframes come close together: FFmpeg makes frames 0 and 1 keyframes (see videoEncoderArgs),
		// and the libav engine answers the viewer's joining request at once. The interval is what follows.
		await new Promise((resolve) => setTimeout(resolve, 1500));
		const startFrames = viewer.frames;
		const startKeyframes = viewer.keyframeTimes.length;
		await new Promise((resolve) => setTimeout(resolve, 5000));

		const frames = viewer.frames - startFrames;
		const keyframes = viewer.keyframeTimes.slice(startKeyframes - 1);
		const gaps = keyframes.slice(1).map((t, i) => t - keyframes[i]!);
		console.log(`frames in 5 s: ${frames}; keyframe gaps (ms): ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
		// 30 fps for 5 s: allow for start-up jitter but not for stalls.
		expect(frames).toBeGreaterThan(120);
		expect(gaps.length).toBeGreaterThanOrEqual(3);
		for (const gap of gaps) {
			expect(gap).toBeGreaterThan(700);
			expect(gap).toBeLessThan(1300);
		}
		const largestFrameGap = Math.max(...viewer.frameTimes.slice(-100).map((t, i, all) => (i ? t - all[i - 1]! : 0)));
		expect(largestFrameGap).toBeLessThan(500);
		expect(viewer.audioPackets).toBeGreaterThan(0);

		const stats = await broadcast.getStats();
		expect(stats.reencoders[0]?.running).toBe(true);
		expect(stats.reencoders[0]?.fps).toBeGreaterThan(20);
	});
});

describe.each(ENGINES)('relay pipeline (%s engine): codecs and sources', (engine) => {
	const fixture = useRelayFixture();

	it('H264 output: a viewer offering H264 receives H264 keyframes at the interval', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({
			id: 'h264-out',
			engine,
			video: { codec: 'H264', width: 640, height: 360, fps: 30, bitrateKbps: 800, keyframeIntervalSeconds: 1 },
		});
		await fixture.broadcaster(broadcast, { codec: 'VP8', audio: false });
		const viewer = await fixture.viewer(broadcast, { codec: 'H264', audio: false });
		await viewer.waitFor(() => viewer.keyframeTimes.length >= 4, 15_000, 'four H264 keyframes');
		// The re-encoder starts with two keyframes in a row (frames 0 and 1); the interval counts from the second.
		const steady = viewer.keyframeTimes.slice(1);
		const gaps = steady.slice(1).map((t, i) => t - steady[i]!);
		console.log(`H264 keyframe gaps (ms): ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
		for (const gap of gaps) expect(gap).toBeGreaterThan(700);
		expect(broadcast.viewers.values().next().value!.consumers[0]!.rtpParameters.codecs[0]!.mimeType).toBe('video/H264');
	});

	it("attach(): a producer on the application's own router and worker feeds the re-encoder", async () => {
		const mediasoup = await import('mediasoup');
		const { testSourceArgs } = await import('../src/ffmpeg/args.js');
		const { FfmpegProcess } = await import('../src/ffmpeg/FfmpegProcess.js');
		const { resolveFfmpeg } = await import('../src/ffmpeg/binary.js');
		const { pino } = await import('pino');
		const relay = await fixture.relay();
		const appWorker = await mediasoup.createWorker({ rtcMinPort: 52200, rtcMaxPort: 52300 });
		let source: InstanceType<typeof FfmpegProcess> | undefined;
		try {
			const appRouter = await appWorker.createRouter({ mediaCodecs: [{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }] });
			const transport = await appRouter.createPlainTransport({ listenIp: '127.0.0.1', comedia: true, rtcpMux: false });
			const producer = await transport.produce({
				kind: 'video',
				rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000 }], encodings: [{ ssrc: 777 }] },
			});
			source = new FfmpegProcess({
				binary: resolveFfmpeg().path,
				args: testSourceArgs({
					video: { codec: 'VP8', width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1, threads: 1 },
					videoTarget: { host: '127.0.0.1', rtpPort: transport.tuple.localPort, rtcpPort: transport.rtcpTuple!.localPort, ssrc: 777, payloadType: 101 },
				}),
				logger: pino({ level: 'silent' }),
			});
			await source.start();
			const broadcast = await relay.createBroadcast({ id: 'attached', engine, video: { width: 320, height: 180, fps: 15, bitrateKbps: 200 } });
			const ingestProducer = await broadcast.attach({ producer, router: appRouter });
			expect(ingestProducer.id).not.toBe(producer.id);
			const viewer = await fixture.viewer(broadcast, { audio: false });
			await viewer.waitForFrames(15);
			expect(broadcast.reencoder('video')!.stats.running).toBe(true);
		} finally {
			await source?.close();
			appWorker.close();
		}
	});

	it('audio.reencode: Opus goes through the engine too, and viewers receive the re-encoded audio', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({
			id: 'audio-reencode',
			engine,
			video: { width: 320, height: 180, fps: 15, bitrateKbps: 200 },
			audio: { reencode: true, bitrateKbps: 48 },
		});
		await fixture.broadcaster(broadcast, { width: 320, height: 180, fps: 15 });
		const kinds = broadcast.stats.reencoders.map((r) => `${r.kind}:${r.codec}`).sort();
		expect(kinds).toEqual(['audio:opus', 'video:VP8']);
		const viewer = await fixture.viewer(broadcast);
		await viewer.waitFor(() => viewer.audioPackets > 50 && viewer.frames > 10, 15_000, 'audio and video');
		expect(relay.ports.inUse).toBe(8);
	});
});

describe('baseline pipeline: no re-encoder', () => {
	const fixture = useRelayFixture();

	it('H264 ingest in baseline mode: viewers get the broadcaster stream, no FFmpeg in between', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'h264-baseline', mode: 'baseline' });
		await fixture.broadcaster(broadcast, { codec: 'H264', audio: false });
		const viewer = await fixture.viewer(broadcast, { codec: 'H264', audio: false });
		await viewer.waitForFrames(30);
		expect(broadcast.reencoder('video')).toBeUndefined();
		expect(broadcast.stats.reencoders).toEqual([]);
	});
});
