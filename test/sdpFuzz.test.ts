/**
 * Issue 8 §2: mutated but plausible offers got HTTP 500 from WHIP (a garbled
 * a=fmtp line made sdp-transform's parseParams throw TypeError; two m= sections
 * with the same mid made mediasoup throw "MID already exists in RTP listener").
 * Client input must get 201 or 4xx, never 5xx, and leave nothing behind.
 *
 * Real offers (Chromium's and werift's, in test/fixtures/sdp) are mutated with a
 * fixed seed and posted over HTTP to a running service: WHIP to broadcasts that
 * take a publisher, WHEP to a broadcast that has media. Every 201 is ended with
 * DELETE. Afterwards the mediasoup workers hold exactly the objects they held
 * before, no FFmpeg was left running, and an unmutated offer still works.
 */
import { readFileSync } from 'node:fs';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { describe, expect, it } from 'vitest';
import type { Service } from '../src/service/Service.js';
import { mediaChildren, sleep } from './helpers/fixture.js';
import { mutateSdp, seededRandom } from './helpers/sdpMutator.js';
import { postSdp, useServiceFixture } from './helpers/service.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

const SEED = 0x5dbf022;
const WHIP_OFFERS = 600;
const WHEP_OFFERS = 600;
const LANES = 6;

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/sdp/${name}`, import.meta.url), 'utf8');
const PUBLISH = ['chromium-whip-publish.sdp', 'chromium-whip-simulcast.sdp', 'werift-whip-publish-h264.sdp'].map(fixture);
const WATCH = ['chromium-whep-watch.sdp', 'werift-whep-watch.sdp'].map(fixture);

/**
 * Live mediasoup objects of every worker started from now on, counted through
 * mediasoup's observer API (the monitoring interface; the relay is not asked).
 * Sessions and ingests own WebRTC and plain transports and what is on them;
 * pipe transports belong to the routers of the fan-out, counted apart.
 */
function mediasoupCensus() {
	const live = {
		routers: new Set<object>(),
		pipeTransports: new Set<object>(),
		transports: new Set<object>(),
		producers: new Set<object>(),
		consumers: new Set<object>(),
	};
	const track = (set: Set<object>, item: { observer: { once(event: 'close', listener: () => void): unknown } }): void => {
		set.add(item);
		item.observer.once('close', () => set.delete(item));
	};
	const onWorker = (worker: ms.Worker): void => {
		worker.observer.on('newrouter', (router) => {
			track(live.routers, router);
			router.observer.on('newtransport', (transport) => {
				if (transport.constructor.name === 'PipeTransport') return track(live.pipeTransports, transport);
				track(live.transports, transport);
				transport.observer.on('newproducer', (producer) => track(live.producers, producer));
				transport.observer.on('newconsumer', (consumer) => track(live.consumers, consumer));
			});
		});
	};
	mediasoup.observer.on('newworker', onWorker);
	return {
		counts: () => Object.fromEntries(Object.entries(live).map(([name, set]) => [name, set.size])) as Record<keyof typeof live, number>,
		stop: () => mediasoup.observer.off('newworker', onWorker),
	};
}

interface Outcome {
	index: number;
	endpoint: string;
	status: number;
	body: string;
	mutations: string[];
}

async function postAndEnd(service: Service, path: string, sdp: string): Promise<{ status: number; body: string }> {
	const response = await postSdp(`${service.url}${path}`, sdp);
	const body = await response.text();
	if (response.status === 201) {
		const location = response.headers.get('location');
		if (location) await fetch(new URL(location, service.url), { method: 'DELETE' });
	}
	return { status: response.status, body };
}

describe('SDP fuzz over WHIP and WHEP: only 201 or 4xx, nothing leaked', () => {
	const start = useServiceFixture();

	it(`${WHIP_OFFERS} mutated WHIP offers and ${WHEP_OFFERS} mutated WHEP offers (seed ${SEED.toString(16)})`, async () => {
		const census = mediasoupCensus();
		const service = await start({ relay: { workers: 1 } });
		const publisher = new WeriftPublisher({ width: 160, height: 90, fps: 10, bitrateKbps: 100 });
		try {
			// A broadcast with media for the WHEP offers: a real publisher over WHIP.
			await publisher.connect(async (offer) => {
				const response = await postSdp(`${service.url}/whip/fuzz-watch`, offer);
				expect(response.status, await response.clone().text()).toBe(201);
				return response.text();
			});
			const deadline = performance.now() + 20_000;
			let ready = 0;
			while (ready !== 201 && performance.now() < deadline) {
				ready = (await postAndEnd(service, '/whep/fuzz-watch', WATCH[0]!)).status;
				if (ready !== 201) await sleep(200);
			}
			expect(ready, 'a valid WHEP offer is answered once the broadcast is live').toBe(201);
			await sleep(500); // the probing sessions above are closing
			const before = census.counts();
			const ffmpegBefore = mediaChildren().length;

			// Broadcasts for the WHIP offers, one per lane; baseline mode, so an accepted offer starts no FFmpeg.
			for (let lane = 0; lane < LANES; lane++) {
				const created = await fetch(`${service.url}/api/broadcasts`, {
					method: 'POST',
					headers: { 'content-type': 'application/json' },
					body: JSON.stringify({ id: `fuzz-publish-${lane}`, mode: 'baseline' }),
				});
				expect(created.status).toBe(201);
			}

			const random = seededRandom(SEED);
			const jobs = [
				...Array.from({ length: WHIP_OFFERS }, (_, i) => ({ index: i, endpoint: 'whip', ...mutateSdp(PUBLISH[i % PUBLISH.length]!, random) })),
				...Array.from({ length: WHEP_OFFERS }, (_, i) => ({ index: WHIP_OFFERS + i, endpoint: 'whep', ...mutateSdp(WATCH[i % WATCH.length]!, random) })),
			];
			const outcomes: Outcome[] = [];
			// Lanes run concurrently; within a lane one request at a time (a WHIP lane has one broadcast).
			await Promise.all(
				Array.from({ length: LANES }, async (_, lane) => {
					for (let i = lane; i < jobs.length; i += LANES) {
						const job = jobs[i]!;
						const path = job.endpoint === 'whip' ? `/whip/fuzz-publish-${lane}` : '/whep/fuzz-watch';
						let result: { status: number; body: string };
						try {
							result = await postAndEnd(service, path, job.sdp);
						} catch (error) {
							result = { status: 599, body: `request failed: ${(error as Error).message}` };
						}
						outcomes.push({ index: job.index, endpoint: job.endpoint, status: result.status, body: result.body.slice(0, 200), mutations: job.mutations });
					}
				}),
			);

			const byStatus = new Map<string, number>();
			for (const o of outcomes) byStatus.set(`${o.endpoint} ${o.status}`, (byStatus.get(`${o.endpoint} ${o.status}`) ?? 0) + 1);
			console.log(`fuzz outcomes: ${[...byStatus].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`);
			if (process.env.FUZZ_VERBOSE) {
				const reasons = new Map<string, number>();
				for (const o of outcomes.filter((x) => x.status !== 201)) {
					const reason = `${o.status} ${o.body.replace(/\d+/g, 'N').slice(0, 70)}`;
					reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
				}
				console.log([...reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n}\t${r}`).join('\n'));
			}
			expect(outcomes.length).toBe(WHIP_OFFERS + WHEP_OFFERS);
			const bad = outcomes.filter((o) => !(o.status === 201 || (o.status >= 400 && o.status < 500)));
			for (const o of bad.slice(0, 40)) console.log(`#${o.index} ${o.endpoint} ${o.status} ${o.body}\n    ${o.mutations.join('\n    ')}`);
			expect(bad.slice(0, 5), `${bad.length} offers got neither 201 nor 4xx`).toEqual([]);
			// The fuzzer must reach the media code, not only the parser: some mutated offers are accepted.
			expect(outcomes.filter((o) => o.endpoint === 'whip' && o.status === 201).length).toBeGreaterThan(WHIP_OFFERS / 10);
			expect(outcomes.filter((o) => o.endpoint === 'whep' && o.status === 201).length).toBeGreaterThan(WHEP_OFFERS / 10);

			// Valid offers still work, on both endpoints.
			expect((await postAndEnd(service, '/whep/fuzz-watch', WATCH[1]!)).status).toBe(201);
			expect((await postAndEnd(service, '/whip/fuzz-publish-0', PUBLISH[0]!)).status).toBe(201);

			// Nothing left behind: the lanes' broadcasts go, and the workers are back where they were.
			for (let lane = 0; lane < LANES; lane++) {
				expect((await fetch(`${service.url}/api/broadcasts/fuzz-publish-${lane}`, { method: 'DELETE' })).status).toBe(204);
			}
			const sessionObjects = (counts: ReturnType<typeof census.counts>) => ({ transports: counts.transports, producers: counts.producers, consumers: counts.consumers });
			const same = (): boolean => JSON.stringify(sessionObjects(census.counts())) === JSON.stringify(sessionObjects(before));
			for (const deadline = performance.now() + 5000; !same() && performance.now() < deadline; ) await sleep(100);
			console.log(`mediasoup objects before ${JSON.stringify(before)}, after ${JSON.stringify(census.counts())}`);
			expect(sessionObjects(census.counts()), 'live WebRTC/plain transports and their producers and consumers').toEqual(sessionObjects(before));
			expect(mediaChildren().length, 'FFmpeg processes').toBe(ffmpegBefore);
			expect([...service.relay.broadcasts.keys()]).toEqual(['fuzz-watch']);
		} finally {
			await publisher.close();
			census.stop();
		}
	}, 120_000);
});
