import { once } from 'node:events';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { loadServiceConfig, type ServiceConfigInput } from '../src/service/config.js';
import { startService, type Service } from '../src/service/Service.js';
import { seededRandom } from '../src/harness/LossyProxy.js';
import { mediaChildren, sleep } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';

/**
 * The service as an attacker or a careless client uses it: refused requests
 * must create nothing, every bad input gets a 4xx (never a 5xx), limits hold
 * under concurrency, tokens work only for their own role and stay out of logs.
 */

const INGEST = 'ingest-token-123';
const ADMIN = 'admin-token-456';
const METRICS = 'metrics-token-789';
const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 };
const ingestAuth = { authorization: `Bearer ${INGEST}` };
const adminAuth = { authorization: `Bearer ${ADMIN}` };

/** A real offer from werift, without connecting: recvonly (a viewer's) or sendonly (a publisher's). */
async function offer(direction: 'recvonly' | 'sendonly'): Promise<string> {
	const pc = new RTCPeerConnection();
	pc.addTransceiver('video', { direction });
	pc.addTransceiver('audio', { direction });
	await pc.setLocalDescription(await pc.createOffer());
	const sdp = pc.localDescription!.sdp;
	await pc.close();
	return sdp;
}

function json(url: string, method: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
	return fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

describe('service: a refused request creates nothing', () => {
	const start = useServiceFixture();

	it('a WHIP POST that is refused (bad SDP, no video, unsupported codec) leaves no broadcast behind: WHEP then says 404', async () => {
		const service = await start({ ingestTokens: [INGEST], relay: { broadcastDefaults: { video } } });
		const viewerOffer = await offer('recvonly');
		const vp9 = (await offer('sendonly')).replace(/VP8\/90000/g, 'VP9/90000');
		const refused = [
			await postSdp(`${service.url}/whip/a`, 'this is not sdp', ingestAuth),
			await postSdp(`${service.url}/whip/b`, viewerOffer, ingestAuth), // sends no video
			await postSdp(`${service.url}/whip/c`, vp9, ingestAuth),
		];
		expect(refused.map((r) => r.status)).toEqual([400, 422, 422]);
		expect([...service.relay.broadcasts.keys()]).toEqual([]);
		for (const id of ['a', 'b', 'c']) expect((await postSdp(`${service.url}/whep/${id}`, viewerOffer)).status).toBe(404);
		expect(mediaChildren()).toEqual([]);
	});

	it('100 concurrent refused WHIP POSTs to new ids: all 4xx, no broadcast, nothing held', async () => {
		const service = await start({ relay: { broadcastDefaults: { video } } });
		const viewerOffer = await offer('recvonly');
		const statuses = await Promise.all(
			Array.from({ length: 100 }, (_, i) => postSdp(`${service.url}/whip/flood-${i}`, viewerOffer).then((r) => r.status)),
		);
		expect(new Set(statuses)).toEqual(new Set([422]));
		expect(service.relay.broadcasts.size).toBe(0);
		expect(service.relay.workerLoad().map((w) => w.consumers)).toEqual([0, 0]);
	});

	it('POST /api/broadcasts: wrong Content-Type is 415, bad bodies 400, and neither creates a broadcast', async () => {
		const service = await start({ adminTokens: [ADMIN] });
		const url = `${service.url}/api/broadcasts`;
		const textPlain = await fetch(url, { method: 'POST', headers: { ...adminAuth, 'content-type': 'text/plain' }, body: '{"id":"x"}' });
		expect(textPlain.status).toBe(415);
		const form = await fetch(url, { method: 'POST', headers: adminAuth, body: new URLSearchParams({ id: 'x' }) });
		expect(form.status).toBe(415);
		for (const body of ['null', '[]', '"x"', '42', '{"id": 5}', '{"id": "../x"}', '{"mdoe": "relay"}', '{"video": "big"}', '{"video": {"fps": "30"}}', '{"mode": "fast"}', '{']) {
			const response = await json(url, 'POST', body, adminAuth);
			expect(response.status, body).toBe(400);
		}
		expect(service.relay.broadcasts.size).toBe(0);
		const ok = await json(url, 'POST', { id: 'good', mode: 'baseline' }, adminAuth);
		expect(ok.status).toBe(201);
		const bare = await fetch(url, { method: 'POST', headers: adminAuth });
		expect(bare.status).toBe(201); // no body at all: a broadcast with a random id
		expect(service.relay.broadcasts.size).toBe(2);
	});
});

describe('service: a cap on broadcasts per node', () => {
	const start = useServiceFixture();

	it('maxBroadcasts holds under 40 concurrent creations; beyond it 503 with Retry-After, through the API and WHIP', async () => {
		const service = await start({ maxBroadcasts: 3, retryAfterSeconds: 7, relay: { broadcastDefaults: { mode: 'baseline', video } } });
		const statuses = await Promise.all(
			Array.from({ length: 40 }, (_, i) =>
				json(`${service.url}/api/broadcasts`, 'POST', { id: `b${i}` }).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), text: await r.text() })),
			),
		);
		expect(statuses.filter((s) => s.status === 201)).toHaveLength(3);
		const full = statuses.filter((s) => s.status !== 201);
		expect(new Set(full.map((s) => s.status))).toEqual(new Set([503]));
		expect(full[0]!.retry).toBe('7');
		expect(full[0]!.text).toMatch(/maxBroadcasts/);
		expect(service.relay.broadcasts.size).toBe(3);

		const whip = await postSdp(`${service.url}/whip/one-more`, await offer('sendonly'));
		expect(whip.status).toBe(503);
		expect(whip.headers.get('retry-after')).toBe('7');
		expect(service.relay.broadcasts.size).toBe(3);
	});
});

describe('service: bad input on every JSON route is a 4xx', () => {
	const start = useServiceFixture();

	it('wrong types, bad addresses and bad RTP parameters: 400/404/422, never 5xx, and the service keeps serving', async () => {
		const service = await start({ relay: { broadcastDefaults: { mode: 'baseline', video } } });
		expect((await json(`${service.url}/api/broadcasts`, 'POST', { id: 'j' })).status).toBe(201);
		const base = `${service.url}/api/broadcasts/j`;
		const cases: Array<[string, unknown]> = [
			['/rtp-ingest', null],
			['/rtp-ingest', []],
			['/rtp-ingest', 'streams'],
			['/rtp-ingest', { streams: 'VP8' }],
			['/rtp-ingest', { streams: [] }],
			['/rtp-ingest', { streams: [{ codec: 1, payloadType: 96, ssrc: 1 }] }],
			['/rtp-ingest', { streams: [{ codec: 'VP8', payloadType: 1000, ssrc: 1 }] }],
			['/rtp-ingest', { streams: [{ codec: 'VP8', payloadType: 96, ssrc: -1 }] }],
			['/rtp-ingest', { streams: [{ codec: 'VP8', payloadType: 96, ssrc: 2 ** 40 }] }],
			['/rtp-ingest', { streams: [{ codec: 'VP8', payloadType: 96.5, ssrc: 1 }] }],
			['/rtp-ingest', { streams: [{ codec: 'VP9', payloadType: 96, ssrc: 1 }] }],
			['/rtp-ingest', { sdp: 'garbage' }],
			['/rtp-ingest', { sdp: 5 }],
			['/pipe-ingest', { ip: 5, port: 4000 }],
			['/pipe-ingest', { ip: 'not-an-ip', port: 4000 }],
			['/pipe-ingest', { ip: '127.0.0.1', port: 0 }],
			['/pipe-ingest', { ip: '127.0.0.1', port: '4000' }],
			['/pipe-ingest', { ip: '127.0.0.1', port: 4000, extra: true }],
		];
		for (const [path, body] of cases) {
			const response = await json(`${base}${path}`, 'POST', body);
			expect([400, 422], `${path} ${JSON.stringify(body)} -> ${response.status} ${await response.clone().text()}`).toContain(response.status);
		}
		expect((await json(`${service.url}/api/broadcasts/nobody/rtp-ingest`, 'POST', { streams: [{ codec: 'VP8', payloadType: 96, ssrc: 1 }] })).status).toBe(404);

		// A pipe session, then producers with wrong RTP parameters.
		const opened = await json(`${base}/pipe-ingest`, 'POST', { ip: '127.0.0.1', port: 4000 });
		expect(opened.status).toBe(201);
		const { sessionUrl } = (await opened.json()) as { sessionUrl: string };
		const producers = `${service.url}${sessionUrl}/producers`;
		for (const body of [
			{},
			{ kind: 'smell', rtpParameters: { codecs: [{}], encodings: [{}] } },
			{ kind: 'video', rtpParameters: { codecs: [{}], encodings: [{}] } },
			{ kind: 'video', rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 'x', clockRate: 90000 }], encodings: [{ ssrc: 1 }] } },
			{ kind: 'video', rtpParameters: { codecs: [{ mimeType: 'video/H265', payloadType: 96, clockRate: 90000 }], encodings: [{ ssrc: 1 }] } },
			{ kind: 'video', rtpParameters: { codecs: 'VP8', encodings: [] } },
		]) {
			const response = await json(producers, 'POST', body);
			expect([400, 422], `${JSON.stringify(body)} -> ${response.status} ${await response.clone().text()}`).toContain(response.status);
		}
		expect((await fetch(`${service.url}${sessionUrl}`, { method: 'DELETE' })).status).toBe(204);
		expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
	});

	it('600 random JSON bodies (seeded) over every JSON route: never a 5xx', async () => {
		const service = await start({ relay: { broadcastDefaults: { mode: 'baseline', video } } });
		expect((await json(`${service.url}/api/broadcasts`, 'POST', { id: 'f' })).status).toBe(201);
		const opened = (await (await json(`${service.url}/api/broadcasts/f/pipe-ingest`, 'POST', { ip: '127.0.0.1', port: 4000 })).json()) as { sessionUrl: string };
		const random = seededRandom(7);
		const atoms: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53, 1e308, '', 'x', '0.0.0.0', '::', '127.0.0.1', [], {}, [1], { a: 1 }, 'VP8', 'opus', 'video', 'audio', 96, 65535, 0xffffffff, '__proto__'];
		const keys = ['id', 'mode', 'video', 'audio', 'codec', 'fps', 'ip', 'port', 'streams', 'sdp', 'kind', 'rtpParameters', 'paused', 'codecs', 'encodings', 'ssrc', 'payloadType', 'mimeType', 'clockRate', 'parameters', '__proto__'];
		const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!;
		const value = (depth: number): unknown => {
			if (depth > 2 || random() < 0.4) return pick(atoms);
			if (random() < 0.3) return Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1));
			return Object.fromEntries(Array.from({ length: 1 + Math.floor(random() * 3) }, () => [pick(keys), value(depth + 1)]));
		};
		const routes = ['/api/broadcasts', '/api/broadcasts/f/rtp-ingest', '/api/broadcasts/f/pipe-ingest', `${opened.sessionUrl}/producers`];
		const failures: string[] = [];
		for (let i = 0; i < 600; i++) {
			const route = routes[i % routes.length]!;
			let body = value(0);
			// Half of them close to valid, so they get past the first checks.
			if (route.endsWith('/producers') && random() < 0.5) body = { kind: pick(['audio', 'video']), rtpParameters: { codecs: [value(1) ?? {}], encodings: [value(1) ?? {}] } };
			if (route.endsWith('/rtp-ingest') && random() < 0.5) body = { streams: [{ codec: pick(atoms), payloadType: pick(atoms), ssrc: pick(atoms) }] };
			const response = await json(`${service.url}${route}`, 'POST', JSON.stringify(body));
			if (response.status >= 500) failures.push(`${route} ${JSON.stringify(body)} -> ${response.status} ${await response.text()}`);
		}
		expect(failures).toEqual([]);
		expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
	});

	it('bodies and headers that are too large: 413 and 431', async () => {
		const service = await start({ bodyLimit: 4096 });
		const big = JSON.stringify({ id: 'x', pad: 'a'.repeat(10_000) });
		expect((await json(`${service.url}/api/broadcasts`, 'POST', big)).status).toBe(413);
		expect((await postSdp(`${service.url}/whip/x`, `v=0\r\n${'a=x\r\n'.repeat(2000)}`)).status).toBe(413);
		const hugeHeader = await fetch(`${service.url}/healthz`, { headers: { 'x-filler': 'a'.repeat(40_000) } });
		expect(hugeHeader.status).toBe(431);
		expect(service.relay.broadcasts.size).toBe(0);
	});

	it('a client that stalls in the middle of a request is cut off after requestTimeoutMs', async () => {
		const service = await start({ requestTimeoutMs: 500 });
		const { port } = new URL(service.url);
		const socket = connect(Number(port), '127.0.0.1');
		await once(socket, 'connect');
		const started = performance.now();
		// Headers promise a body that never comes.
		socket.write('POST /whip/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n');
		let answer = '';
		socket.on('data', (d: Buffer) => (answer += d.toString()));
		const closed = await Promise.race([once(socket, 'close').then(() => true), sleep(5000).then(() => false)]);
		socket.destroy();
		expect(closed).toBe(true);
		expect(performance.now() - started).toBeLessThan(5000);
		expect(answer).not.toMatch(/^HTTP\/1\.1 5/);
		expect(service.relay.broadcasts.size).toBe(0);
	});

	it('page routes serve only their pages: no path traversal, no file outside public/', async () => {
		const service = await start();
		for (const path of ['/static/../package.json', '/static/%2e%2e/package.json', '/static/..%2fpackage.json', '/public/../package.json', '/dist/index.js', '/../package.json']) {
			const response = await fetch(`${service.url}${path}`);
			const text = await response.text();
			expect(text, path).not.toMatch(/"name": "broadcast-relay"|export \{/);
			expect(response.status, path).toBeLessThan(500);
		}
		const page = await fetch(`${service.url}/watch/..%2F..%2Fetc%2Fpasswd`);
		expect(page.status).toBe(200);
		expect(await page.text()).toMatch(/<html/i); // the player page, whatever the id
	});
});

describe('service: tokens', () => {
	const start = useServiceFixture();

	it('a token of one role is refused for another; someone else’s session URL is 404', async () => {
		const service = await start({ ingestTokens: [INGEST], adminTokens: [ADMIN], metricsTokens: [METRICS], relay: { broadcastDefaults: { mode: 'baseline', video } } });
		// Ingest token on the admin API, admin and metrics tokens on WHIP.
		expect((await fetch(`${service.url}/api/status`, { headers: ingestAuth })).status).toBe(401);
		expect((await json(`${service.url}/api/broadcasts`, 'POST', { id: 'x' }, ingestAuth)).status).toBe(401);
		expect((await fetch(`${service.url}/api/broadcasts/x`, { method: 'DELETE', headers: { authorization: `Bearer ${METRICS}` } })).status).toBe(401);
		const sendOffer = await offer('sendonly');
		expect((await postSdp(`${service.url}/whip/x`, sendOffer, adminAuth)).status).toBe(401);
		expect((await postSdp(`${service.url}/whip/x`, sendOffer, { authorization: `Bearer ${METRICS}` })).status).toBe(401);
		expect(service.relay.broadcasts.size).toBe(0);

		// A session of broadcast "one" cannot be ended through broadcast "two", nor as the other protocol.
		for (const id of ['one', 'two']) expect((await json(`${service.url}/api/broadcasts`, 'POST', { id }, adminAuth)).status).toBe(201);
		const published = await postSdp(`${service.url}/whip/one`, sendOffer, ingestAuth);
		expect(published.status).toBe(201);
		const location = published.headers.get('location')!;
		const sessionId = location.split('/').at(-1)!;
		expect((await fetch(`${service.url}/whip/two/sessions/${sessionId}`, { method: 'DELETE', headers: ingestAuth })).status).toBe(404);
		expect((await fetch(`${service.url}/whep/one/sessions/${sessionId}`, { method: 'DELETE' })).status).toBe(404);
		expect((await fetch(`${service.url}${location}`, { method: 'DELETE' })).status).toBe(401); // needs the ingest token
		expect(service.sessions.count('whip')).toBe(1);
		expect((await fetch(`${service.url}${location}`, { method: 'DELETE', headers: ingestAuth })).status).toBe(200);
		expect(service.sessions.count('whip')).toBe(0);
	});

	it('/metrics takes the metrics or admin token when tokens are set; open when none are', async () => {
		const guarded = await start({ adminTokens: [ADMIN], metricsTokens: [METRICS] });
		expect((await fetch(`${guarded.url}/metrics`)).status).toBe(401);
		expect((await fetch(`${guarded.url}/metrics`, { headers: ingestAuth })).status).toBe(401);
		expect((await fetch(`${guarded.url}/metrics`, { headers: { authorization: `Bearer ${METRICS}` } })).status).toBe(200);
		expect((await fetch(`${guarded.url}/metrics`, { headers: adminAuth })).status).toBe(200);
		const adminOnly = await start({ adminTokens: [ADMIN] });
		expect((await fetch(`${adminOnly.url}/metrics`)).status).toBe(401);
		expect((await fetch(`${adminOnly.url}/metrics`, { headers: adminAuth })).status).toBe(200);
		const open = await start();
		expect((await fetch(`${open.url}/metrics`)).status).toBe(200);
	});

	it('no token reaches the log: request lines redact ?token=…', async () => {
		const lines: string[] = [];
		const sink = new Writable({
			write(chunk: Buffer, _encoding, done) {
				lines.push(...chunk.toString().split('\n').filter(Boolean));
				done();
			},
		});
		const config = loadServiceConfig({ flags: { port: 0, adminTokens: [ADMIN], ingestTokens: [INGEST], relay: { workers: 1 } } satisfies ServiceConfigInput });
		let service: Service | undefined;
		try {
			service = await startService(config, { logger: pino({ level: 'debug' }, sink) });
			await fetch(`${service.url}/watch/demo?token=${ADMIN}`);
			await fetch(`${service.url}/?x=1&token=${INGEST}#frag`);
			await fetch(`${service.url}/api/status?access_token=${ADMIN}`);
			await postSdp(`${service.url}/whip/x?token=${INGEST}`, 'v=0\r\n', { authorization: `Bearer ${INGEST}` }); // a 400, logged by the error path
			await fetch(`${service.url}/api/broadcasts`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{' });
		} finally {
			await service?.close();
		}
		const requestLines = lines.filter((l) => l.includes('/watch/demo'));
		expect(requestLines.length).toBeGreaterThan(0);
		expect(requestLines.join('\n')).toMatch(/token=\[redacted\]/);
		for (const line of lines) {
			expect(line).not.toContain(ADMIN);
			expect(line).not.toContain(INGEST);
		}
	});
});
