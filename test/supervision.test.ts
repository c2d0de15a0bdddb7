import { describe, expect, it } from 'vitest';
import { ENGINES, mediaChildren, sleep, useRelayFixture } from './helpers/fixture.js';

const video = { width: 640, height: 360, fps: 30, bitrateKbps: 600, keyframeIntervalSeconds: 1 } as const;

describe.each(ENGINES)('re-encoder supervision (%s engine)', (engine) => {
	const fixture = useRelayFixture();

	it('the re-encoder process SIGKILLed mid-stream: viewers see frames again within one keyframe interval + 2 s, without re-signalling', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'kill-ffmpeg', engine, video });
		await fixture.broadcaster(broadcast, { ...video, keyframeIntervalSeconds: 1 });
		const viewer = await fixture.viewer(broadcast);
		await viewer.waitForFrames(30);

		const reencoder = broadcast.reencoder('video')!;
		const producerId = reencoder.producer.id;
		const consumer = broadcast.viewers.get(viewer.relayViewerId)!.consumers.find((c) => c.kind === 'video')!;
		const oldPid = reencoder.pid!;
		const restarted = new Promise<void>((resolve) => broadcast.once('reencoderrestarted', () => resolve()));

		const killedAt = performance.now();
		process.kill(oldPid, 'SIGKILL');
		await restarted;
		const keyframesBefore = viewer.keyframeTimes.filter((t) => t < killedAt).length;
		await viewer.waitFor(
			() => viewer.keyframeTimes.some((t) => t > killedAt) && viewer.frameTimes.filter((t) => t > killedAt).length > 10,
			video.keyframeIntervalSeconds * 1000 + 2000,
			'video after the kill',
		);
		const backAfterMs = viewer.keyframeTimes.find((t) => t > killedAt)! - killedAt;
		console.log(`killed the ${engine} re-encoder ${oldPid}; first keyframe at the viewer ${backAfterMs.toFixed(0)} ms later (keyframes before: ${keyframesBefore})`);

		expect(backAfterMs).toBeLessThan(video.keyframeIntervalSeconds * 1000 + 2000);
		expect(reencoder.stats.restarts).toBe(1);
		expect(reencoder.pid).not.toBe(oldPid);
		expect(reencoder.producer.id).toBe(producerId);
		expect(consumer.closed).toBe(false);
		expect(broadcast.stats.reencoders[0]!.restarts).toBe(1);
	});

	it('closing a broadcast kills its re-encoder process and frees its ports and transports', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'close-me', engine, video });
		const broadcaster = await fixture.broadcaster(broadcast, video);
		await fixture.viewer(broadcast);
		const pid = broadcast.reencoder('video')!.pid!;
		// Two pairs per re-encoded track; the libav engine takes audio too (passed through, held back for lip sync).
		expect(relay.ports.inUse).toBe(engine === 'libav' ? 8 : 4);
		await broadcast.close();
		await broadcaster.close();
		expect(() => process.kill(pid, 0)).toThrow();
		expect(relay.ports.inUse).toBe(0);
		expect(mediaChildren()).toEqual([]);
		for (const slot of relay.pool.slots) {
			const dump = await slot.worker.dump();
			expect(dump.routerIds).toEqual([]);
		}
		expect(relay.broadcasts.size).toBe(0);
		await sleep(10);
	});

	it('no re-encoder process outlives a Node process killed with SIGKILL', async () => {
		const { spawn, execFileSync } = await import('node:child_process');
		const script = new URL('./helpers/relayChild.ts', import.meta.url).pathname;
		const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RELAY_CHILD_ENGINE: engine } });
		const pid = await new Promise<number>((resolve, reject) => {
			child.stdout.on('data', (chunk: Buffer) => {
				const match = /ffmpeg-pid (\d+)/.exec(chunk.toString());
				if (match) resolve(Number(match[1]));
			});
			child.once('exit', (code) => reject(new Error(`relay child exited early with ${code}`)));
		});
		expect(() => process.kill(pid, 0)).not.toThrow();
		child.kill('SIGKILL');
		await new Promise((resolve) => child.once('exit', resolve));
		const deadline = Date.now() + 5000;
		let alive = true;
		while (alive && Date.now() < deadline) {
			try {
				process.kill(pid, 0);
				await sleep(100);
			} catch {
				alive = false;
			}
		}
		expect(alive).toBe(false);
		// Its mediasoup workers exit when their channel to Node closes.
		await sleep(500);
		const orphans = (() => {
			try {
				return execFileSync('pgrep', ['-f', `relayChild`], { encoding: 'utf8' }).trim();
			} catch {
				return '';
			}
		})();
		expect(orphans).toBe('');
	});
});
