import { describe, expect, it } from 'vitest';
import type { Service } from '../src/service/Service.js';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import { ffmpegChildren, sleep } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';

const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 };

/**
 * Plays `id` over WHEP until a viewer gets `frames` frames: a 409 (not live
 * yet) or a viewer without video is retried until `timeoutMs`. Resolves with
 * the ms it took; the viewer is closed.
 */
async function whepUntilVideo(service: Service, id: string, timeoutMs: number, frames = 5): Promise<number> {
	const started = performance.now();
	const statuses: number[] = [];
	while (performance.now() - started < timeoutMs) {
		const viewer = new WeriftViewer({ audio: false });
		try {
			let status = 0;
			await viewer.connect(async (offer) => {
				const response = await postSdp(`${service.url}/whep/${id}`, offer);
				status = response.status;
				if (status !== 201) throw new Error(`WHEP ${status}`);
				return response.text();
			});
			const left = timeoutMs - (performance.now() - started);
			await viewer.waitForFrames(frames, Math.max(500, Math.min(left, 8000)));
			return performance.now() - started;
		} catch {
			statuses.push(0);
			await sleep(500);
		} finally {
			await viewer.close().catch(() => undefined);
		}
	}
	throw new Error(`no video on /whep/${id} within ${timeoutMs} ms (${statuses.length} attempts)`);
}

describe('sources the relay runs itself come back after a worker death', () => {
	const start = useServiceFixture();

	it('the demo broadcast: its ingest worker killed, WHEP viewers get video again', async () => {
		const service = await start({ demo: 'phoenix', relay: { broadcastDefaults: { video } } });
		const broadcast = service.relay.broadcast('phoenix');
		console.log(`demo: first video after ${(await whepUntilVideo(service, 'phoenix', 20_000)).toFixed(0)} ms`);
		const ingestPid = service.relay.pool.slots[broadcast.stats.ingest.workerIndex]!.worker.pid;
		const rebuilt = new Promise((resolve) => broadcast.once('rebuilt', resolve));
		process.kill(ingestPid, 'SIGKILL');
		await rebuilt;
		const took = await whepUntilVideo(service, 'phoenix', 20_000);
		console.log(`demo: video again ${took.toFixed(0)} ms after the rebuild`);
		expect(broadcast.closed).toBe(false);
		expect(broadcast.source('video')?.closed).toBe(false);
		// The demo's one FFmpeg (the one sending to the dead ingest was stopped) and the video re-encoder's.
		expect(ffmpegChildren().length).toBe(2);
	});
});
