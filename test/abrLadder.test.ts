/**
 * Server-side ABR: the libav engine makes a simulcast ladder from one decode, the
 * re-encoded producer carries one encoding per layer, and mediasoup picks a layer
 * per viewer: by bandwidth estimation (Chromium behind a rate-capped link), or as
 * the viewer or the operator limits it (werift over WHEP and the API).
 */
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broadcast } from '../src/Broadcast.js';
import { ensureClip, ensureOpusClip } from '../src/harness/fixtures.js';
import { LossyProxy } from '../src/harness/LossyProxy.js';
import { SyntheticBroadcaster } from '../src/harness/SyntheticBroadcaster.js';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import { sleep, useRelayFixture } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ADMIN = 'abr-admin-token';
/** 640x360 on top: a ladder of 160x90, 320x180 and 640x360 from the default rule. */
const video = { width: 640, height: 360, fps: 15, bitrateKbps: 600, keyframeIntervalSeconds: 10 } as const;
const clipSpec = { codec: 'VP8' as const, width: 640, height: 360, fps: 15, seconds: 20, bitrateKbps: 600 };
const SIZES = ['160x90', '320x180', '640x360'];

async function publish(broadcast: Broadcast): Promise<SyntheticBroadcaster> {
	const publisher = new SyntheticBroadcaster({ clip: ensureClip(clipSpec), audio: ensureOpusClip(20), fps: clipSpec.fps });
	await publisher.connect(async (offer) => (await broadcast.publish(offer)).answer);
	publisher.start();
	return publisher;
}

/** Packets the relay lost from the broadcaster (mediasoup then NACKs, and asks the broadcaster for a keyframe when that fails). */
async function ingestLost(broadcast: Broadcast): Promise<number> {
	const stats = (await broadcast.source('video')?.getStats().catch(() => [])) ?? [];
	return stats.reduce((sum, s) => sum + (s.packetsLost ?? 0), 0);
}

/**
 * Viewers' keyframe requests (layer switches among them) end at the engine: what reaches the
 * broadcaster is the engine's own (input it could not repair), or mediasoup's own on the
 * broadcaster's link when it lost packets there (a loaded machine); never a viewer's.
 */
async function expectNoViewerRequestUpstream(broadcast: Broadcast, before: { upstream: number; engine: number; lost: number }): Promise<void> {
	const forwarded = broadcast.stats.keyframeRequests.forwardedUpstream - before.upstream;
	const engineOwn = broadcast.reencoder('video')!.stats.upstreamKeyframeRequests - before.engine;
	const lost = (await ingestLost(broadcast)) - before.lost;
	console.log(`requests to the broadcaster ${forwarded} (the engine's own ${engineOwn}; packets lost from the broadcaster ${lost}); absorbed at the re-encoded producer ${broadcast.stats.keyframeRequests.absorbed}`);
	expect(broadcast.stats.keyframeRequests.absorbed).toBeGreaterThan(0);
	if (lost === 0) expect(forwarded).toBeLessThanOrEqual(engineOwn);
}

async function upstreamCounts(broadcast: Broadcast): Promise<{ upstream: number; engine: number; lost: number }> {
	return { upstream: broadcast.stats.keyframeRequests.forwardedUpstream, engine: broadcast.reencoder('video')!.stats.upstreamKeyframeRequests, lost: await ingestLost(broadcast) };
}

const sizeOf = (viewer: WeriftViewer): string => (viewer.keyframeSize ? `${viewer.keyframeSize.width}x${viewer.keyframeSize.height}` : 'none');

/** Waits until the viewer's keyframes are of `size` and frames keep coming after that. */
async function waitForLayer(viewer: WeriftViewer, size: string, what: string): Promise<void> {
	await viewer.waitFor(() => sizeOf(viewer) === size, 8000, `${what}: keyframes of ${size} (last ${sizeOf(viewer)})`);
	await viewer.waitForFrames(5, 5000);
}

describe('a viewer chooses its layer: WHEP ?maxLayer, PATCH on the session, and the operator ceiling', () => {
	const start = useServiceFixture();

	it('werift viewers get the layer asked for, move when it changes, and bad values get 400 with nothing changed', async () => {
		const service = await start({ adminTokens: [ADMIN], relay: { broadcastDefaults: { video } } });
		const broadcast = await service.relay.createBroadcast({ id: 'abr' });
		expect(broadcast.layerCount).toBe(3);
		const publisher = await publish(broadcast);
		const viewers: WeriftViewer[] = [];
		const join = async (query = ''): Promise<{ viewer: WeriftViewer; session: string }> => {
			const viewer = new WeriftViewer({ audio: false });
			viewers.push(viewer);
			let session = '';
			await viewer.connect(async (offer) => {
				const response = await postSdp(`${service.url}/whep/abr${query}`, offer);
				expect(response.status).toBe(201);
				session = new URL(response.headers.get('location')!, service.url).toString();
				return response.text();
			});
			return { viewer, session };
		};
		const api = (path: string, body: unknown, method = 'PUT'): Promise<Response> =>
			fetch(`${service.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
		try {
			await waitUntil(() => broadcast.live, 20_000, 'broadcast live');
			// The engine's start asked the broadcaster for its first keyframe (mediasoup may ask once more
			// while none has come): counted from when that is over.
			await sleep(2500);
			const upstreamBefore = await upstreamCounts(broadcast);

			const low = await join('?maxLayer=0');
			await waitForLayer(low.viewer, SIZES[0]!, 'WHEP ?maxLayer=0');
			const top = await join();
			await waitForLayer(top.viewer, SIZES[2]!, 'no limit');

			// The viewer raises its own limit on its session URL.
			const patched = await fetch(low.session, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxLayer: 1 }) });
			expect(patched.status, await patched.clone().text()).toBe(200);
			expect(await patched.json()).toMatchObject({ preferred: 1, ceiling: 2 });
			await waitForLayer(low.viewer, SIZES[1]!, 'PATCH maxLayer 1');

			// The operator's ceiling moves the unlimited viewer down; lifting it moves it back.
			expect((await api('/api/broadcasts/abr/max-layer', { maxLayer: 1 })).status).toBe(200);
			await waitForLayer(top.viewer, SIZES[1]!, 'ceiling 1');
			expect((await api('/api/broadcasts/abr/max-layer', { maxLayer: null })).status).toBe(200);
			await waitForLayer(top.viewer, SIZES[2]!, 'ceiling lifted');

			// The API names each viewer's layer; the broadcast counts viewers per layer.
			const listed = (await (await fetch(`${service.url}/api/broadcasts/abr/viewers`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as Array<{ layers?: { current: number } }>;
			expect(listed.map((v) => v.layers?.current).sort()).toEqual([1, 2]);
			expect(broadcast.stats.layers.viewersPerLayer).toEqual([0, 1, 1]);
			expect(broadcast.stats.layers.switches).toBeGreaterThanOrEqual(3);

			// Bad values: 400, and no viewer more or less, no layer changed.
			const viewersBefore = broadcast.viewers.size;
			const offerless = await postSdp(`${service.url}/whep/abr?maxLayer=7`, 'v=0\r\n');
			expect(offerless.status).toBe(400);
			expect(await offerless.text()).toMatch(/maxLayer/);
			const tooHigh = await fetch(low.session, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxLayer: 3 }) });
			expect(tooHigh.status).toBe(400);
			expect(await tooHigh.text()).toMatch(/0 \(lowest\) to 2/);
			expect((await fetch(low.session, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"maxLayer":"top"}' })).status).toBe(400);
			expect((await api('/api/broadcasts/abr/max-layer', { maxLayer: 5 })).status).toBe(400);
			expect((await api('/api/broadcasts/abr/viewers/nobody/max-layer', { maxLayer: 0 })).status).toBe(404);
			expect(broadcast.viewers.size).toBe(viewersBefore);
			expect(broadcast.maxLayer).toBe(2);
			const lowViewer = [...broadcast.viewers.values()].find((v) => v.layers?.info.preferred === 1);
			expect(lowViewer, 'the PATCHed viewer keeps its maximum layer 1').toBeDefined();

			// Layer switches ask the engine for keyframes on the target layer, never the broadcaster.
			const engine = broadcast.reencoder('video')!.stats;
			console.log(`ABR API: switches ${broadcast.stats.layers.switches}, engine keyframes per layer ${engine.layers!.map((l) => l.keyframes).join('/')}, on demand ${engine.keyframesOnDemand}`);
			expect(engine.keyframesOnDemand).toBeGreaterThan(0);
			await expectNoViewerRequestUpstream(broadcast, upstreamBefore);
		} finally {
			await Promise.all(viewers.map((v) => v.close()));
			await publisher.close();
		}
	});
});

describe('engine restart with a ladder', () => {
	const fixture = useRelayFixture();

	it('the engine process SIGKILLed: every layer back within 1 s, viewers keep their consumers', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'abr-kill', video: { ...video, keyframeIntervalSeconds: 2 } });
		const publisher = await publish(broadcast);
		const viewers: WeriftViewer[] = [];
		try {
			for (const layer of [0, 1, 2]) {
				const viewer = new WeriftViewer({ audio: false });
				viewers.push(viewer);
				await viewer.connect(async (offer) => (await broadcast.addViewer(offer, { maxLayer: layer })).answer);
			}
			for (const [layer, viewer] of viewers.entries()) await waitForLayer(viewer, SIZES[layer]!, `layer ${layer} before the kill`);
			const reencoder = broadcast.reencoder('video')!;
			const consumers = [...broadcast.viewers.values()].map((v) => v.consumers[0]!.id).sort();
			const pid = reencoder.pid!;
			const killedAt = performance.now();
			process.kill(pid, 'SIGKILL');
			const framesAtKill = viewers.map((v) => v.frames);
			const keyframesAtKill = viewers.map((v) => v.keyframeTimes.length);
			// Back: the first keyframe of the new engine at the viewer of each layer (stamped on arrival);
			// then frames keep coming.
			const back = await Promise.all(
				viewers.map(async (viewer, layer) => {
					await viewer.waitFor(() => viewer.keyframeTimes.length > keyframesAtKill[layer]! && viewer.frames > framesAtKill[layer]! + 2 && reencoder.pid !== pid, 5000, `layer ${layer} after the kill`);
					return Math.round(viewer.keyframeTimes[keyframesAtKill[layer]!]! - killedAt);
				}),
			);
			console.log(`ladder engine SIGKILLed: first keyframe of each layer after ${back.join(' / ')} ms (lowest first)`);
			for (const ms of back) expect(ms).toBeLessThan(1000);
			for (const [layer, viewer] of viewers.entries()) await waitForLayer(viewer, SIZES[layer]!, `layer ${layer} after the kill`);
			expect([...broadcast.viewers.values()].map((v) => v.consumers[0]!.id).sort()).toEqual(consumers);
		} finally {
			await Promise.all(viewers.map((v) => v.close()));
			await publisher.close();
		}
	});
});

describe('bandwidth estimation picks the layer: Chromium viewers over WHEP', () => {
	const start = useServiceFixture();
	let browser: Browser;

	beforeAll(async () => {
		browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic', '--disable-background-networking'] });
	});
	afterAll(async () => {
		await browser?.close();
	});

	it('a viewer behind a 400 kbit/s link settles on a lower layer within 10 s and keeps decoding; an unconstrained one stays on top', async () => {
		const service = await start({ relay: { broadcastDefaults: { video: { ...video, fps: 15, bitrateKbps: 900 } } } });
		const broadcast = await service.relay.createBroadcast({ id: 'abr-bwe' });
		const publisher = await publish(broadcast);
		const proxies: LossyProxy[] = [];
		const context = await browser.newContext();
		try {
			await waitUntil(() => broadcast.live, 20_000, 'broadcast live');
			// Counted from after the start's own request (see above).
			await sleep(2500);
			const upstreamBefore = await upstreamCounts(broadcast);
			// The page makes the offer; Node posts it over WHEP and, for the constrained viewer,
			// points the answer's candidate at a rate-capped proxy.
			await context.exposeFunction('whep', async (offer: string, rateKbps: number) => {
				const response = await postSdp(`${service.url}/whep/abr-bwe`, offer);
				const answer = await response.text();
				if (response.status !== 201) throw new Error(`WHEP ${response.status}: ${answer}`);
				if (!rateKbps) return answer;
				const proxy = await LossyProxy.start(LossyProxy.targetOf(answer), { drop: 0, delayMs: 10, jitterMs: 0, rateKbps, queueMs: 250 }, 1);
				proxies.push(proxy);
				return LossyProxy.redirectAnswer(answer, proxy.port);
			});
			const open = async (rateKbps: number) => {
				const page = await context.newPage();
				await page.evaluate(async (rate) => {
					const pc = new RTCPeerConnection();
					pc.addTransceiver('video', { direction: 'recvonly' });
					await pc.setLocalDescription(await pc.createOffer());
					const answer = await (window as unknown as { whep(offer: string, rate: number): Promise<string> }).whep(pc.localDescription!.sdp, rate);
					await pc.setRemoteDescription({ type: 'answer', sdp: answer });
					(window as unknown as { pc: RTCPeerConnection }).pc = pc;
				}, rateKbps);
				return page;
			};
			const inbound = (page: Awaited<ReturnType<typeof open>>) =>
				page.evaluate(async () => {
					const stats = await (window as unknown as { pc: RTCPeerConnection }).pc.getStats();
					for (const s of stats.values()) {
						if (s.type === 'inbound-rtp' && s.kind === 'video') return { framesDecoded: (s.framesDecoded ?? 0) as number, width: (s.frameWidth ?? 0) as number, height: (s.frameHeight ?? 0) as number };
					}
					return { framesDecoded: 0, width: 0, height: 0 };
				});
			const openedAt = performance.now();
			const [limited, free] = [await open(400), await open(0)];
			// Settled: the limited viewer's picture below the top size; then it must keep decoding there.
			let settledMs = Number.NaN;
			const samples: string[] = [];
			for (let i = 0; i < 20; i++) {
				await sleep(500);
				const s = await inbound(limited);
				samples.push(`${s.width}x${s.height}`);
				if (s.framesDecoded > 0 && s.width > 0 && s.width < video.width) {
					settledMs = performance.now() - openedAt;
					break;
				}
			}
			const viewersNow = [...broadcast.viewers.values()].map((v) => v.info.layers?.current);
			console.log(`Chromium ABR: limited viewer picture sizes every 0.5 s ${samples.join(' ')}; settled after ${Math.round(settledMs)} ms; relay layers ${JSON.stringify(viewersNow)}; proxy queue drops ${proxies[0]?.queueDropped}`);
			expect(settledMs).toBeLessThan(10_000);
			// Settled means done stepping down: every viewer on a layer, no switch for 1.5 s (bounded).
			const switches = (): string => [...broadcast.viewers.values()].map((v) => `${v.layers?.info.current}/${v.layers?.info.switches}`).join(' ');
			for (let last = switches(), stableSince = performance.now(), until = performance.now() + 6000; performance.now() < until; ) {
				await sleep(250);
				const now = switches();
				if (now !== last || now.includes('null')) {
					last = now;
					stableSince = performance.now();
				} else if (performance.now() - stableSince >= 1500) break;
			}
			const limitedBefore = await inbound(limited);
			const freeBefore = await inbound(free);
			await sleep(3000);
			const limitedAfter = await inbound(limited);
			const freeAfter = await inbound(free);
			console.log(`Chromium ABR, 3 s later: limited ${limitedAfter.width}x${limitedAfter.height} +${limitedAfter.framesDecoded - limitedBefore.framesDecoded} frames; free ${freeAfter.width}x${freeAfter.height} +${freeAfter.framesDecoded - freeBefore.framesDecoded} frames`);
			expect(limitedAfter.width).toBeLessThan(video.width);
			expect(limitedAfter.framesDecoded - limitedBefore.framesDecoded).toBeGreaterThan(20);
			expect(`${freeAfter.width}x${freeAfter.height}`).toBe(SIZES[2]);
			expect(freeAfter.framesDecoded - freeBefore.framesDecoded).toBeGreaterThan(20);
			await expectNoViewerRequestUpstream(broadcast, upstreamBefore);
		} finally {
			await context.close();
			for (const proxy of proxies) proxy.close();
			await publisher.close();
		}
	});
});

async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
	const deadline = performance.now() + timeoutMs;
	while (!predicate()) {
		if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		await sleep(50);
	}
}
