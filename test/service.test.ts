import * as mediasoup from 'mediasoup';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { testSourceArgs } from '../src/ffmpeg/args.js';
import { resolveFfmpeg } from '../src/ffmpeg/binary.js';
import { FfmpegProcess } from '../src/ffmpeg/FfmpegProcess.js';
import { pipeToRelay } from '../src/ingest/pipeToRelay.js';
import type { Service } from '../src/service/Service.js';
import { mediaChildren, sleep } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';

const INGEST = 'ingest-token-123';
const ADMIN = 'admin-token-456';
const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 };

async function whipPublish(service: Service, id: string, publisher: WeriftPublisher): Promise<string> {
	let location = '';
	await publisher.connect(async (offer) => {
		const response = await postSdp(`${service.url}/whip/${id}`, offer, { authorization: `Bearer ${INGEST}` });
		expect(response.status).toBe(201);
		location = response.headers.get('location')!;
		return response.text();
	});
	return location;
}

async function whepPlay(service: Service, id: string, viewer: WeriftViewer): Promise<string> {
	let location = '';
	await viewer.connect(async (offer) => {
		const response = await postSdp(`${service.url}/whep/${id}`, offer);
		expect(response.status).toBe(201);
		location = response.headers.get('location')!;
		return response.text();
	});
	return location;
}

/** A real recvonly offer from werift, without connecting. */
async function viewerOffer(): Promise<{ sdp: string; close: () => Promise<void> }> {
	const pc = new RTCPeerConnection();
	pc.addTransceiver('video', { direction: 'recvonly' });
	pc.addTransceiver('audio', { direction: 'recvonly' });
	await pc.setLocalDescription(await pc.createOffer());
	return { sdp: pc.localDescription!.sdp, close: () => pc.close() };
}

/** mediasoup objects (transports, producers, consumers…) the relay's workers hold. */
async function workerHandlers(service: Service): Promise<number> {
	let count = 0;
	for (const slot of service.relay.pool.slots) {
		const dump = (await slot.worker.dump()) as unknown as { channelMessageHandlers: { channelRequestHandlers: string[] } };
		count += dump.channelMessageHandlers.channelRequestHandlers.length;
	}
	return count;
}

describe('service: WHIP ingest and WHEP playback with werift', () => {
	const start = useServiceFixture();

	it('publishes over WHIP, plays over WHEP, and DELETE ends both', async () => {
		const service = await start({ ingestTokens: [INGEST], relay: { broadcastDefaults: { video } } });
		const publisher = new WeriftPublisher({ ...video });
		const viewer = new WeriftViewer();
		try {
			const whip = await whipPublish(service, 'show', publisher);
			expect(whip).toMatch(/^\/whip\/show\/sessions\/[A-Za-z0-9_-]{22}$/);
			const broadcast = service.relay.broadcast('show');
			expect(broadcast.source('video')).toBeDefined();
			expect(broadcast.reencoder('video')).toBeDefined();

			const whep = await whepPlay(service, 'show', viewer);
			await viewer.waitForFrames(20, 20_000);
			expect(viewer.audioPackets).toBeGreaterThan(0);
			expect(broadcast.viewers.size).toBe(1);
			// The broadcaster felt only the re-encoder's requests.
			console.log(`keyframe requests at the werift publisher: ${publisher.keyframeRequests}`);

			expect((await fetch(`${service.url}${whep}`, { method: 'DELETE' })).status).toBe(200);
			expect((await fetch(`${service.url}${whep}`, { method: 'DELETE' })).status).toBe(404);
			expect(broadcast.viewers.size).toBe(0);

			expect((await fetch(`${service.url}${whip}`, { method: 'DELETE' })).status).toBe(401);
			expect((await fetch(`${service.url}${whip}`, { method: 'DELETE', headers: { authorization: `Bearer ${INGEST}` } })).status).toBe(200);
			await expect.poll(() => broadcast.source('video'), { timeout: 3000 }).toBeUndefined();
			// Only the publisher's own FFmpeg is left; the re-encoder's exits once SIGTERM is handled.
			await expect.poll(() => mediaChildren().length, { timeout: 3000 }).toBe(1);
		} finally {
			await viewer.close();
			await publisher.close();
		}
	});

	it('pipe ingest: a producer in another mediasoup app is piped in over the API and watched over WHEP', async () => {
		const service = await start({ relay: { broadcastDefaults: { video } } });
		const created = await fetch(`${service.url}/api/broadcasts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'piped' }) });
		expect(created.status).toBe(201);
		const worker = await mediasoup.createWorker({ rtcMinPort: 52400, rtcMaxPort: 52500 });
		let source: FfmpegProcess | undefined;
		const viewer = new WeriftViewer({ audio: false });
		try {
			const router = await worker.createRouter({ mediaCodecs: [{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }] });
			const transport = await router.createPlainTransport({ listenIp: '127.0.0.1', comedia: true, rtcpMux: false });
			const producer = await transport.produce({ kind: 'video', rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000 }], encodings: [{ ssrc: 4242 }] } });
			source = new FfmpegProcess({
				binary: resolveFfmpeg().path,
				args: testSourceArgs({ video: { codec: 'VP8', ...video, threads: 1 }, videoTarget: { host: '127.0.0.1', rtpPort: transport.tuple.localPort, rtcpPort: transport.rtcpTuple!.localPort, ssrc: 4242, payloadType: 101 } }),
				logger: pino({ level: 'silent' }),
			});
			await source.start();
			const pipe = await pipeToRelay({ router, producer, relayUrl: service.url, broadcastId: 'piped' });
			await whepPlay(service, 'piped', viewer);
			await viewer.waitForFrames(15, 20_000);
			await pipe.close();
			await sleep(300);
			expect(service.relay.broadcast('piped').source('video')).toBeUndefined();
		} finally {
			await viewer.close();
			await source?.close();
			worker.close();
		}
	});

	it('opens and closes 50 WHEP sessions concurrently and holds nothing for them afterwards', async () => {
		const service = await start({ demo: 'fifty', relay: { broadcastDefaults: { video } } });
		// Two sessions first (one per worker), so the viewer routers and their pipes exist before counting.
		const warm = await Promise.all([viewerOffer(), viewerOffer()]);
		const firsts = await Promise.all(warm.map((w) => postSdp(`${service.url}/whep/fifty`, w.sdp)));
		expect(firsts.map((r) => r.status)).toEqual([201, 201]);
		await Promise.all(firsts.map((r) => fetch(`${service.url}${r.headers.get('location')}`, { method: 'DELETE' })));
		await Promise.all(warm.map((w) => w.close()));
		const baseline = await workerHandlers(service);

		const offers = await Promise.all(Array.from({ length: 50 }, () => viewerOffer()));
		const responses = await Promise.all(offers.map((o) => postSdp(`${service.url}/whep/fifty`, o.sdp)));
		expect(responses.map((r) => r.status)).toEqual(new Array(50).fill(201));
		expect(service.relay.broadcast('fifty').viewers.size).toBe(50);
		expect(service.sessions.count('whep')).toBe(50);
		const deletes = await Promise.all(responses.map((r) => fetch(`${service.url}${r.headers.get('location')}`, { method: 'DELETE' })));
		expect(deletes.map((r) => r.status)).toEqual(new Array(50).fill(200));
		await Promise.all(offers.map((o) => o.close()));

		expect(service.relay.broadcast('fifty').viewers.size).toBe(0);
		expect(service.sessions.count('whep')).toBe(0);
		expect(service.relay.workerLoad().map((w) => w.consumers)).toEqual([0, 0]);
		expect(await workerHandlers(service)).toBe(baseline);
	});
});

describe('service: status codes for bad requests, and it keeps serving', () => {
	const start = useServiceFixture();

	it('answers OPTIONS, 405, 415, 400, 422, 404, 401, 413, and the relay holds nothing afterwards', async () => {
		const service = await start({ ingestTokens: [INGEST], adminTokens: [ADMIN], demo: 'live', relay: { broadcastDefaults: { video } } });
		const url = `${service.url}/whep/live`;
		const before = await workerHandlers(service);

		const options = await fetch(url, { method: 'OPTIONS' });
		expect(options.status).toBe(204);
		expect(options.headers.get('accept-post')).toBe('application/sdp');
		expect(options.headers.get('access-control-allow-origin')).toBe('*');

		expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
		expect(await (await fetch(`${service.url}/readyz`)).json()).toEqual({ status: 'ready' });
		expect((await fetch(`${service.url}/metrics`)).status).toBe(401); // admin tokens are set, so /metrics needs one
		const metrics = await (await fetch(`${service.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
		expect(metrics).toMatch(/^broadcast_relay_viewers\{broadcast="live"\} 0$/m);
		expect(metrics).toMatch(/^broadcast_relay_keyframe_requests_total\{broadcast="live",stage="absorbed"\} \d+$/m);
		expect(metrics).toMatch(/^broadcast_relay_worker_consumers\{worker="1"\} \d+$/m);

		const get = await fetch(url);
		expect(get.status).toBe(405);
		expect(get.headers.get('allow')).toBe('POST, OPTIONS');
		expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(415);
		expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'v=0' })).status).toBe(415);
		const garbage = await postSdp(url, 'this is not sdp');
		expect(garbage.status).toBe(400);
		expect(await garbage.text()).toMatch(/v=0/);

		const { sdp, close } = await viewerOffer();
		await close();
		const vp9Only = sdp.replace(/VP8\/90000/g, 'VP9/90000');
		const unsupported = await postSdp(url, vp9Only);
		expect(unsupported.status).toBe(422);
		const audioOnly = sdp.replace(/m=video[\s\S]*?(?=m=audio|$)/, '');
		expect(audioOnly).not.toContain('m=video');
		expect((await postSdp(url, audioOnly)).status).toBe(201); // audio-only viewers are fine
		expect((await postSdp(`${service.url}/whep/nobody`, sdp)).status).toBe(404);
		expect((await fetch(`${url}/sessions/does-not-exist`, { method: 'DELETE' })).status).toBe(404);
		expect((await postSdp(url, `v=0\r\n${'a=x\r\n'.repeat(20_000)}`)).status).toBe(413);

		// WHIP needs the ingest token; the admin API the admin token.
		const unauthorized = await postSdp(`${service.url}/whip/other`, sdp);
		expect(unauthorized.status).toBe(401);
		expect(unauthorized.headers.get('www-authenticate')).toMatch(/^Bearer realm="whip"/);
		expect((await postSdp(`${service.url}/whip/other`, sdp, { authorization: 'Bearer wrong-token-x' })).status).toBe(401);
		expect((await fetch(`${service.url}/api/status`)).status).toBe(401);
		expect((await fetch(`${service.url}/api/status`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(200);
		// A WHIP offer that sends no video.
		const recvonly = await postSdp(`${service.url}/whip/other`, sdp, { authorization: `Bearer ${INGEST}` });
		expect(recvonly.status).toBe(422);

		expect(mediaChildren().length).toBe(2); // the demo source and its re-encoder
		const audioViewers = service.sessions.count('whep');
		expect(audioViewers).toBe(1);
		service.sessions.endAll();
		expect(service.relay.broadcast('live').viewers.size).toBe(0);
		expect(service.relay.workerLoad().map((w) => w.consumers)).toEqual([0, 0]);
		// What is left beyond the start: the viewer router the audio-only viewer opened and its audio pipe, nothing per viewer
		// (and nothing of broadcast "other", whose refused WHIP POST created it: it was closed again).
		expect(service.relay.broadcasts.has('other')).toBe(false);
		expect(await workerHandlers(service)).toBe(before + 5);
		const viewer = new WeriftViewer({ audio: false });
		try {
			await whepPlay(service, 'live', viewer);
			await viewer.waitForFrames(10, 20_000);
		} finally {
			await viewer.close();
		}
	});

	it('two publishers racing for one broadcast: one gets 201, the other 409; no capacity is 503 with Retry-After', async () => {
		const service = await start({ ingestTokens: [INGEST], relay: { consumersPerWorker: 1, broadcastDefaults: { video } } });
		const offers = [new WeriftPublisher({ ...video, audio: false }), new WeriftPublisher({ ...video, audio: false })];
		const statuses: number[] = [];
		try {
			await Promise.all(
				offers.map((p) =>
					p
						.connect(async (offer) => {
							const response = await postSdp(`${service.url}/whip/race`, offer, { authorization: `Bearer ${INGEST}` });
							statuses.push(response.status);
							if (response.status !== 201) throw new Error(await response.text());
							return response.text();
						})
						.catch(() => undefined),
				),
			);
			expect(statuses.sort()).toEqual([201, 409]);
			expect(mediaChildren().length).toBe(2); // the winner's FFmpeg source and its re-encoder

			// Budget: one consumer per worker, two workers; a video-only viewer needs one.
			const opened: Array<{ close: () => Promise<void> }> = [];
			const codes: number[] = [];
			for (let i = 0; i < 3; i++) {
				const o = await viewerOffer();
				opened.push(o);
				const noAudio = o.sdp.replace(/m=audio[\s\S]*$/, '');
				const response = await postSdp(`${service.url}/whep/race`, noAudio);
				codes.push(response.status);
				if (response.status === 503) expect(response.headers.get('retry-after')).toBe('5');
			}
			expect(codes).toEqual([201, 201, 503]);
			await Promise.all(opened.map((o) => o.close()));
		} finally {
			await Promise.all(offers.map((p) => p.close()));
		}
	});

	it('peers that never connect, or vanish, are ended after peerTimeoutMs and free their broadcast', async () => {
		const service = await start({ ingestTokens: [INGEST], demo: 'quiet', relay: { peerTimeoutMs: 1000, broadcastDefaults: { video } } });
		const { sdp, close } = await viewerOffer();
		await close();
		expect((await postSdp(`${service.url}/whep/quiet`, sdp)).status).toBe(201);
		expect(service.relay.broadcast('quiet').viewers.size).toBe(1);
		await expect.poll(() => service.sessions.count('whep'), { timeout: 5000 }).toBe(0);
		expect(service.relay.broadcast('quiet').viewers.size).toBe(0);

		// A publisher that vanishes without DELETE: the broadcast takes a new publisher afterwards.
		const vanishing = new WeriftPublisher({ ...video, audio: false });
		await whipPublish(service, 'vanish', vanishing);
		await expect.poll(() => service.relay.broadcast('vanish').live, { timeout: 5000 }).toBe(true);
		await vanishing.close();
		await expect.poll(() => service.relay.broadcast('vanish').source('video'), { timeout: 10_000 }).toBeUndefined();
		expect(service.sessions.count('whip')).toBe(0);
		const next = new WeriftPublisher({ ...video, audio: false });
		try {
			await whipPublish(service, 'vanish', next);
		} finally {
			await next.close();
		}
	});
});
