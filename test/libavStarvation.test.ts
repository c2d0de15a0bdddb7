import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { TrackReencoderStats } from '../src/reencoder/TrackReencoder.js';
import { sleep, useRelayFixture } from './helpers/fixture.js';

const video = { width: 1280, height: 720, fps: 30, bitrateKbps: 1500, keyframeIntervalSeconds: 2 } as const;
const PRESSURE_SECONDS = 12;
/** Busy loops sharing the engine's core: with 3 the engine gets about a quarter of it, too little for 720p30 at full effort. */
const BUSY_LOOPS = 3;

/** Pins a process and all its threads (libuv's pool, the codecs') to one core. */
function pin(pid: number, core: number): void {
	execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
}

/** A busy loop pinned to `core`, for `seconds` (bounded: it stops by itself). */
function busyLoop(core: number, seconds: number): ChildProcess {
	return spawn('taskset', ['-c', String(core), process.execPath, '-e', `const end = Date.now() + ${seconds * 1000}; while (Date.now() < end) {}`], { stdio: 'ignore' });
}

/** Frames a viewer received in each whole second of [from, to). */
function framesPerSecond(frameTimes: number[], from: number, to: number): number[] {
	const counts: number[] = [];
	for (let t = from; t + 1000 <= to; t += 1000) counts.push(frameTimes.filter((f) => f >= t && f < t + 1000).length);
	return counts;
}

describe.runIf(availableParallelism() >= 2)('libav engine on a CPU-starved core', () => {
	const fixture = useRelayFixture();

	it('sharing its core with a busy loop, it sheds load: viewers keep >= 10 fps and a keyframe every GOP + 1.5 s, health says degraded; full rate within 5 s after', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'starved', engine: 'libav', video });
		const broadcaster = await fixture.broadcaster(broadcast, { ...video, keyframeIntervalSeconds: 2, audio: false });
		const viewer = await fixture.viewer(broadcast, { audio: false });
		await viewer.waitFor(() => viewer.frames > 60, 20_000, 'first frames');
		const reencoder = broadcast.reencoder('video')!;
		// The engine and a busy loop share core 1; the broadcaster's FFmpeg, the workers and this process stay off it.
		pin(reencoder.pid!, 1);
		if (broadcaster.pid) pin(broadcaster.pid, 0);
		const loops = Array.from({ length: BUSY_LOOPS }, () => busyLoop(1, PRESSURE_SECONDS));
		const pressureFrom = performance.now();
		const healthSeen: TrackReencoderStats['health'][] = [];
		const effortSeen: number[] = [];
		try {
			while (performance.now() - pressureFrom < PRESSURE_SECONDS * 1000) {
				await sleep(1000);
				healthSeen.push(reencoder.stats.health);
				effortSeen.push(reencoder.stats.effort ?? 0);
			}
		} finally {
			for (const loop of loops) loop.kill('SIGKILL');
		}
		const pressureTo = performance.now();
		// The first seconds are the engine finding its level; judge the rest.
		const underPressure = framesPerSecond(viewer.frameTimes, pressureFrom + 3000, pressureTo);
		const keyframes = viewer.keyframeTimes.filter((t) => t >= pressureFrom && t < pressureTo);
		const gaps = [keyframes[0]! - pressureFrom, ...keyframes.slice(1).map((t, i) => t - keyframes[i]!), pressureTo - keyframes.at(-1)!];
		await sleep(5000);
		const after = framesPerSecond(viewer.frameTimes, pressureTo + 4000, pressureTo + 5000);
		console.log(
			`starved libav engine: fps at the viewer ${underPressure.join(' ')}; keyframe gaps ${gaps.map((g) => Math.round(g)).join(' ')} ms; effort ${effortSeen.join('')}; health ${[...new Set(healthSeen.map((h) => `${h.state}${h.reason ? ` (${h.reason})` : ''}`))].join(' | ')}; 5th second after: ${after.join(' ')} fps`,
		);
		for (const fps of underPressure) expect(fps).toBeGreaterThanOrEqual(10);
		for (const gap of gaps) expect(gap).toBeLessThanOrEqual(video.keyframeIntervalSeconds * 1000 + 1500);
		expect(healthSeen.some((h) => h.state === 'degraded')).toBe(true);
		expect(after[0]).toBeGreaterThanOrEqual(video.fps * 0.8);
	});
});
