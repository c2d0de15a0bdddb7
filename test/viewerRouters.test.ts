/**
 * Viewer routers are made per payload-type profile (a browser decodes only the
 * payload types it offered), so a client could make one router per payload-type
 * combination through WHEP offers, and every one stayed for the broadcast's life
 * with its pipe transports (an SDP fuzz run left 1-2 routers behind each time;
 * 20 offers with 20 video payload types left 20). A viewer router now closes,
 * with its pipes, once its last viewer (or reserved join) is gone and a short
 * linger has passed; joins in the meantime reuse it.
 */
import { describe, expect, it } from 'vitest';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import type { Service } from '../src/service/Service.js';
import { sleep } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

const video = { width: 160, height: 90, fps: 15, bitrateKbps: 150, keyframeIntervalSeconds: 1 };
const ID = 'profiles';

/**
 * What the relay's workers hold, from mediasoup's own dumps: routers, and every
 * object (router, transport, producer, consumer) the workers have a handler for,
 * so a pipe transport or pipe consumer left behind on the encoder's router shows.
 */
async function workerCensus(service: Service): Promise<{ routers: number; objects: number }> {
	let routers = 0;
	let objects = 0;
	for (const slot of service.relay.pool.slots) {
		const dump = await slot.worker.dump();
		routers += dump.routerIds.length;
		const handlers = (dump as unknown as { channelMessageHandlers: { channelRequestHandlers: string[] } }).channelMessageHandlers.channelRequestHandlers;
		objects += handlers.length;
	}
	return { routers, objects };
}

async function waitUntil(what: string, predicate: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
	const deadline = performance.now() + timeoutMs;
	while (!(await predicate())) {
		if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		await sleep(100);
	}
}

/** A werift viewer over WHEP; returns its session URL. Waits while the broadcast is not yet live for playback. */
async function whep(service: Service, viewer: WeriftViewer): Promise<string> {
	let location = '';
	await viewer.connect(async (offer) => {
		for (const deadline = performance.now() + 20_000; ; ) {
			const response = await postSdp(`${service.url}/whep/${ID}`, offer);
			const body = await response.text();
			if (response.status === 201) {
				location = response.headers.get('location')!;
				return body;
			}
			expect([409, 503], body).toContain(response.status);
			if (performance.now() > deadline) throw new Error(`WHEP still ${response.status}: ${body}`);
			await sleep(200);
		}
	});
	return location;
}

async function leave(service: Service, viewer: WeriftViewer, location: string): Promise<void> {
	expect((await fetch(new URL(location, service.url), { method: 'DELETE' })).status).toBe(200);
	await viewer.close();
}

describe('viewer routers close when their last viewer leaves (issue 8 §7)', () => {
	const start = useServiceFixture();

	it('20 WHEP viewers, each with its own video payload type, join and leave: routers and pipes back to the baseline; the next viewer gets video', async () => {
		const service = await start({ relay: { workers: 2 } });
		const publisher = new WeriftPublisher({ ...video, audio: false });
		const viewers: WeriftViewer[] = [];
		try {
			await publisher.connect(async (offer) => {
				const response = await postSdp(`${service.url}/whip/${ID}`, offer);
				expect(response.status).toBe(201);
				return response.text();
			});
			const broadcast = service.relay.broadcast(ID);
			// Baseline: the broadcast live, with no viewers (the first viewer waits for that).
			const first = new WeriftViewer({ audio: false });
			viewers.push(first);
			await leave(service, first, await whep(service, first));
			await waitUntil('the first viewer router to close', async () => broadcast.stats.routers.length === 0);
			const baseline = await workerCensus(service);

			// 20 payload types, 96-115: 20 profiles, so 20 viewer routers (5 joins at a time).
			for (let batch = 0; batch < 4; batch++) {
				await Promise.all(
					Array.from({ length: 5 }, async (_, i) => {
						const viewer = new WeriftViewer({ audio: false, videoPayloadType: 96 + batch * 5 + i });
						viewers.push(viewer);
						await leave(service, viewer, await whep(service, viewer));
					}),
				);
			}
			expect(broadcast.viewers.size).toBe(0);
			expect(service.relay.workerLoad().map((w) => w.consumers)).toEqual([0, 0]);
			// Within the linger, no more empty routers stay open than one per worker: churning through profiles holds no more.
			expect(broadcast.stats.routers.length).toBeLessThanOrEqual(2);
			expect(broadcast.stats.routers.every((r) => r.consumers === 0)).toBe(true);
			await waitUntil('the viewer routers to close', async () => (await workerCensus(service)).routers === baseline.routers);
			expect(broadcast.stats.routers).toEqual([]);
			await waitUntil('their pipes to close', async () => (await workerCensus(service)).objects === baseline.objects);

			// The relay keeps serving: the next viewer gets a router and video.
			const next = new WeriftViewer({ audio: false, videoPayloadType: 100 });
			viewers.push(next);
			const nextSession = await whep(service, next);
			await next.waitForFrames(10, 20_000);
			expect(broadcast.stats.routers.map((r) => [r.profile, r.consumers])).toEqual([['VP8:100', 1]]);
			await leave(service, next, nextSession);
			await waitUntil('its router to close', async () => (await workerCensus(service)).routers === baseline.routers);
		} finally {
			await Promise.all(viewers.map((v) => v.close()));
			await publisher.close();
		}
	}, 90_000);

	it('a join on a router whose last viewer is leaving at that moment keeps its place and gets video; the tally stays exact', async () => {
		const service = await start({ relay: { workers: 1 } });
		const publisher = new WeriftPublisher({ ...video, audio: false });
		const viewers: WeriftViewer[] = [];
		try {
			await publisher.connect(async (offer) => {
				const response = await postSdp(`${service.url}/whip/${ID}`, offer);
				expect(response.status).toBe(201);
				return response.text();
			});
			const broadcast = service.relay.broadcast(ID);
			for (let round = 0; round < 3; round++) {
				const leaving = new WeriftViewer({ audio: false, videoPayloadType: 120 });
				const joining = new WeriftViewer({ audio: false, videoPayloadType: 120 });
				viewers.push(leaving, joining);
				const leavingSession = await whep(service, leaving);
				// The newcomer's POST and the last viewer's DELETE race: whichever comes first, the newcomer gets video.
				const [joinedSession] = await Promise.all([whep(service, joining), leave(service, leaving, leavingSession)]);
				await joining.waitForFrames(5, 20_000);
				expect(broadcast.viewers.size).toBe(1);
				expect(broadcast.stats.routers.map((r) => r.consumers)).toEqual([1]);
				expect(service.relay.workerLoad().map((w) => w.consumers)).toEqual([1]);
				await leave(service, joining, joinedSession);
			}
			await waitUntil('the last router to close', async () => broadcast.stats.routers.length === 0);
			expect(service.relay.workerLoad().map((w) => w.consumers)).toEqual([0]);
		} finally {
			await Promise.all(viewers.map((v) => v.close()));
			await publisher.close();
		}
	}, 90_000);
});
