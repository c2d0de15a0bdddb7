import { describe, expect, it } from 'vitest';
import { CapacityExceededError } from '../src/index.js';
import { sleep, useRelayFixture } from './helpers/fixture.js';

const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 } as const;

describe('workers dying', () => {
	const fixture = useRelayFixture();

	it('a viewer worker killed: its viewers are reported, new viewers go elsewhere, the others keep receiving', async () => {
		const relay = await fixture.relay({ workers: 3 });
		const broadcast = await relay.createBroadcast({ id: 'worker-kill', video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		expect(broadcast.stats.ingest).toEqual({ workerIndex: 0, encoderWorkerIndex: 1 });
		const viewers = [await fixture.viewer(broadcast), await fixture.viewer(broadcast), await fixture.viewer(broadcast)];
		await Promise.all(viewers.map((v) => v.waitForFrames(10)));
		const placements = viewers.map((v) => broadcast.viewers.get(v.relayViewerId)!.placement.workerIndex);
		expect(new Set(placements)).toEqual(new Set([0, 1, 2]));
		const doomed = viewers[placements.indexOf(2)]!;
		const survivors = viewers.filter((v) => v !== doomed);

		const lost = new Promise<{ workerIndex: number; viewerIds: string[] }>((resolve) => relay.once('viewerslost', resolve));
		const replaced = new Promise<{ index: number; pid: number }>((resolve) => relay.once('workerreplaced', resolve));
		const deadPid = relay.pool.slots[2]!.worker.pid;
		process.kill(deadPid, 'SIGKILL');

		const report = await lost;
		expect(report).toEqual({ broadcastId: 'worker-kill', workerIndex: 2, viewerIds: [doomed.relayViewerId] });
		expect(broadcast.viewers.has(doomed.relayViewerId)).toBe(false);
		expect(broadcast.stats.routers.every((r) => r.workerIndex !== 2)).toBe(true);

		// Joining while the slot is being replaced places the viewer on a live worker: 0 or 1, or slot 2's
		// replacement if it was ready first (on a busy machine it can be), never the dead one.
		const newcomer = await fixture.viewer(broadcast);
		const newcomerPlacement = broadcast.viewers.get(newcomer.relayViewerId)!.placement;
		expect(newcomerPlacement.workerPid).not.toBe(deadPid);
		expect(relay.pool.slots[newcomerPlacement.workerIndex]!.worker.pid).toBe(newcomerPlacement.workerPid);
		await newcomer.waitForFrames(10);
		await Promise.all(survivors.map((v) => v.waitForFrames(15)));

		const replacement = await replaced;
		expect(replacement.index).toBe(2);
		expect(replacement.pid).not.toBe(deadPid);
		expect(relay.ready).toBe(true);
	});

	it('the encoder worker killed: every viewer is reported, the re-encoder is rebuilt and new viewers get video', async () => {
		const relay = await fixture.relay({ workers: 2 });
		const broadcast = await relay.createBroadcast({ id: 'encoder-kill', video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		const first = await fixture.viewer(broadcast);
		const second = await fixture.viewer(broadcast);
		await Promise.all([first.waitForFrames(5), second.waitForFrames(5)]);
		const rebuilt = new Promise((resolve) => broadcast.once('rebuilt', resolve));
		const lost = new Promise<{ viewerIds: string[] }>((resolve) => relay.once('viewerslost', resolve));
		const deadPid = relay.pool.slots[broadcast.stats.ingest.encoderWorkerIndex]!.worker.pid;
		process.kill(deadPid, 'SIGKILL');
		expect((await lost).viewerIds.sort()).toEqual([first.relayViewerId, second.relayViewerId].sort());
		await rebuilt;
		expect(relay.pool.slots[broadcast.stats.ingest.encoderWorkerIndex]!.worker.pid).not.toBe(deadPid);
		const again = await fixture.viewer(broadcast);
		await again.waitForFrames(10, 20_000);
		expect(broadcast.reencoder('video')!.stats.running).toBe(true);
	});
});

describe('placement', () => {
	const fixture = useRelayFixture();

	it('with a small budget, viewers spread over routers and workers, each router gets its pipe once, then capacity runs out', async () => {
		const relay = await fixture.relay({ workers: 2, consumersPerWorker: 4, consumersPerRouter: 2 });
		const broadcast = await relay.createBroadcast({ id: 'placement', video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		const viewers = [];
		for (let i = 0; i < 8; i++) viewers.push(await fixture.viewer(broadcast, { audio: false }));
		await Promise.all(viewers.map((v) => v.waitForFrames(3)));

		const routers = broadcast.stats.routers;
		console.log('placement:', JSON.stringify(routers.map((r) => ({ worker: r.workerIndex, consumers: r.consumers, pipes: r.pipes }))));
		expect(routers).toHaveLength(4);
		expect(routers.map((r) => r.consumers)).toEqual([2, 2, 2, 2]);
		expect(routers.map((r) => r.pipes)).toEqual([1, 1, 1, 1]);
		expect(routers.filter((r) => r.workerIndex === 0)).toHaveLength(2);
		expect(relay.workerLoad().map((w) => w.consumers)).toEqual([4, 4]);

		const overflow = fixture.viewer(broadcast, { audio: false });
		await expect(overflow).rejects.toBeInstanceOf(CapacityExceededError);

		// A viewer leaving frees its place for the next one, on the same router and pipe.
		const leaving = viewers[0]!;
		const leavingRouter = broadcast.viewers.get(leaving.relayViewerId)!.placement.routerId;
		fixture.forget(leaving);
		await leaving.close();
		broadcast.viewers.get(leaving.relayViewerId)?.close();
		const next = await fixture.viewer(broadcast, { audio: false });
		expect(broadcast.viewers.get(next.relayViewerId)!.placement.routerId).toBe(leavingRouter);
		expect(broadcast.stats.routers.map((r) => r.pipes)).toEqual([1, 1, 1, 1]);
		await sleep(10);
	});

	it('viewers offering different payload types get routers made with their payload types', async () => {
		const relay = await fixture.relay({ workers: 1 });
		const broadcast = await relay.createBroadcast({ id: 'payload-types', video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		const a = await fixture.viewer(broadcast, { audio: false, videoPayloadType: 96 });
		const b = await fixture.viewer(broadcast, { audio: false, videoPayloadType: 120 });
		await Promise.all([a.waitForFrames(5), b.waitForFrames(5)]);
		const profiles = broadcast.stats.routers.map((r) => r.profile).sort();
		expect(profiles).toEqual(['VP8:120', 'VP8:96']);
		const consumerPt = (id: string) => broadcast.viewers.get(id)!.consumers[0]!.rtpParameters.codecs[0]!.payloadType;
		expect(consumerPt(a.relayViewerId)).toBe(96);
		expect(consumerPt(b.relayViewerId)).toBe(120);
	});
});
