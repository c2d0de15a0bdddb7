import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRelay, type Relay } from '../src/index.js';
import { startTestBroadcaster } from './helpers/testBroadcaster.js';
import { WeriftViewer } from './helpers/weriftViewer.js';
import type { FfmpegProcess } from '../src/ffmpeg/FfmpegProcess.js';

describe('relay pipeline: synthetic broadcaster → re-encoder → werift viewer', () => {
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
			video: { width: 640, height: 360, fps: 30, bitrateKbps: 800, keyframeIntervalSeconds: 1 },
		});
		broadcaster = await startTestBroadcaster(broadcast, { keyframeIntervalSeconds: 1 });
		const viewer = new WeriftViewer();
		viewers.push(viewer);
		await viewer.connect(async (offer) => (await broadcast.addViewer(offer)).answer);

		await viewer.waitFor(() => viewer.keyframeTimes.length >= 1, 15_000, 'the first keyframe');
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
