import { describe, expect, it } from 'vitest';
import type { Broadcast, KeyframeRequestStats } from '../src/Broadcast.js';
import { ENGINES, sleep, useRelayFixture } from './helpers/fixture.js';
import type { WeriftViewer } from '../src/harness/WeriftViewer.js';

const VIEWERS = 20;
const STORM_SECONDS = 10;
const small = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 } as const;
// A real encoder keyframes rarely; with a short GOP its own keyframes would satisfy requests before they are re-sent.
const broadcasterGop = 4;

describe('keyframe absorption', () => {
	const fixture = useRelayFixture();

	/**
	 * 20 viewers join; for 10 s each sends a PLI every 500 ms while one viewer a
	 * second leaves and another joins. Returns the keyframe-request counts of
	 * that phase only (the re-encoder's own start-up request is before it).
	 */
	async function churnAndPliStorm(broadcast: Broadcast): Promise<KeyframeRequestStats> {
		const viewers: WeriftViewer[] = [];
		for (let i = 0; i < VIEWERS; i++) viewers.push(await fixture.viewer(broadcast, { audio: false }));
		await Promise.all(viewers.map((v) => v.waitFor(() => v.frames > 0, 20_000, 'first frames')));
		const before = { ...broadcast.stats.keyframeRequests };
		for (let tick = 0; tick < STORM_SECONDS * 2; tick++) {
			await Promise.all(viewers.map((v) => v.sendPli()));
			if (tick % 2 === 1) {
				const leaving = viewers.shift()!;
				fixture.forget(leaving);
				await leaving.close();
				viewers.push(await fixture.viewer(broadcast, { audio: false }));
			}
			await sleep(500);
		}
		await sleep(1000);
		const after = broadcast.stats.keyframeRequests;
		return {
			fromViewers: after.fromViewers - before.fromViewers,
			absorbed: after.absorbed - before.absorbed,
			forwardedUpstream: after.forwardedUpstream - before.forwardedUpstream,
			toReencoder: after.toReencoder - before.toReencoder,
		};
	}

	it.each(ENGINES)("relay mode (%s engine): viewers' PLIs end at the re-encoded producer; the broadcaster sees a handful", async (engine) => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'relay-mode', engine, video: small });
		await fixture.broadcaster(broadcast, { ...small, keyframeIntervalSeconds: broadcasterGop, audio: false });
		const counts = await churnAndPliStorm(broadcast);
		console.log(`relay mode (${engine} engine), ${STORM_SECONDS} s storm: ${JSON.stringify(counts)}`);
		expect(counts.fromViewers).toBeGreaterThanOrEqual(VIEWERS * STORM_SECONDS);
		// Measured where they arrive: the viewer routers pass requests on about once a keyframe interval (1 s) each,
		// to the re-encoded producer, where they end; the broadcaster's producer hardly sends any.
		expect(counts.absorbed).toBeGreaterThanOrEqual(STORM_SECONDS - 2);
		expect(counts.forwardedUpstream).toBeLessThanOrEqual(2);
	});

	it('baseline mode: the same viewers make keyframe requests reach the broadcaster every second', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'baseline-mode', mode: 'baseline' });
		await fixture.broadcaster(broadcast, { ...small, keyframeIntervalSeconds: broadcasterGop, audio: false });
		const counts = await churnAndPliStorm(broadcast);
		console.log(`baseline mode, ${STORM_SECONDS} s storm: ${JSON.stringify(counts)}`);
		expect(counts.fromViewers).toBeGreaterThanOrEqual(VIEWERS * STORM_SECONDS);
		// No re-encoded producer: nothing is absorbed, and the requests reach the broadcaster.
		expect(counts.absorbed).toBe(0);
		// mediasoup keeps one request outstanding per producer and re-sends it each second until a keyframe comes.
		expect(counts.forwardedUpstream).toBeGreaterThanOrEqual(STORM_SECONDS - 2);
	});
});
