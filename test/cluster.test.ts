import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterView } from '../src/cluster/ClusterNode.js';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import { sleep } from './helpers/fixture.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

/*
 * A real cluster: a Redis of its own on a free loopback port and three relay
 * node processes (the CLI under tsx), distinct HTTP and RTC ports. The cases
 * run in order on one cluster, each leaving it as the next expects: (a)
 * origin and two edges, (b) a full node redirects, (e) Redis restarted,
 * (c) an edge killed, (d) the origin killed.
 */

const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const REDIS = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server';
const BROADCAST = 'show';
const children = new Set<ChildProcess>();

async function freePort(): Promise<number> {
	const server = createServer();
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	const { port } = server.address() as { port: number };
	await new Promise((resolve) => server.close(resolve));
	return port;
}

function track(child: ChildProcess, name: string): { output: () => string } {
	children.add(child);
	let text = '';
	const add = (d: Buffer) => {
		text += d.toString();
		if (text.length > 200_000) text = text.slice(-100_000);
	};
	child.stdout?.on('data', add);
	child.stderr?.on('data', add);
	child.once('exit', () => children.delete(child));
	void name;
	return { output: () => text };
}

async function waitForText(get: () => string, pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
	const end = performance.now() + timeoutMs;
	while (!pattern.test(get())) {
		if (performance.now() > end) throw new Error(`${what}: no ${pattern} within ${timeoutMs} ms:\n${get().slice(-3000)}`);
		await sleep(50);
	}
}

async function kill(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
	if (!child || child.exitCode !== null || child.signalCode !== null) return;
	const exited = once(child, 'exit');
	child.kill(signal);
	await exited;
}

class RedisProcess {
	child?: ChildProcess;
	constructor(readonly port: number) {}
	async start(): Promise<void> {
		const child = spawn(REDIS, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
		const { output } = track(child, 'redis');
		this.child = child;
		await waitForText(output, /Ready to accept connections/, 10_000, 'redis-server');
	}
	stop(): Promise<void> {
		return kill(this.child);
	}
}

interface NodeProcess {
	id: string;
	url: string;
	child: ChildProcess;
	output(): string;
}

let rtcBase = 42000;

async function startNode(id: string, redisPort: number, env: Record<string, string> = {}): Promise<NodeProcess> {
	const port = await freePort();
	const url = `http://127.0.0.1:${port}`;
	const rtcMin = rtcBase;
	rtcBase += 500;
	const child = spawn(
		process.execPath,
		['--import', 'tsx', CLI, 'serve', '--port', String(port), '--workers', '1', '--cluster', `redis://127.0.0.1:${redisPort}`, '--node-id', id, '--public-url', url, '--log-level', 'warn'],
		{
			stdio: ['ignore', 'pipe', 'pipe'],
			env: {
				...process.env,
				BROADCAST_RELAY_CPU_ADMISSION: 'false',
				BROADCAST_RELAY_RTC_MIN_PORT: String(rtcMin),
				BROADCAST_RELAY_RTC_MAX_PORT: String(rtcMin + 499),
				...env,
			},
		},
	);
	const { output } = track(child, id);
	await waitForText(output, /broadcast-relay is up/, 30_000, `node ${id}`);
	return { id, url, child, output };
}

async function postSdp(url: string, sdp: string): Promise<Response> {
	return fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp, redirect: 'manual' });
}

async function clusterView(node: NodeProcess): Promise<ClusterView> {
	const response = await fetch(`${node.url}/api/cluster`);
	expect(response.status).toBe(200);
	return (await response.json()) as ClusterView;
}

/** A WHEP viewer that remembers where it plays; play() POSTs (following one redirect, as WHEP clients do). */
class Viewer {
	werift = new WeriftViewer();
	node = '';
	redirectedFrom?: string;
	async play(entry: NodeProcess, nodes: NodeProcess[]): Promise<void> {
		await this.werift.close().catch(() => undefined);
		this.werift = new WeriftViewer();
		this.redirectedFrom = undefined;
		await this.werift.connect(async (offer) => {
			let response = await postSdp(`${entry.url}/whep/${BROADCAST}`, offer);
			let at = entry;
			if (response.status === 307) {
				const location = response.headers.get('location')!;
				expect(location).toMatch(/[?&]hop=1/);
				this.redirectedFrom = entry.id;
				at = nodes.find((n) => location.startsWith(n.url))!;
				response = await postSdp(location, offer);
			}
			if (response.status !== 201) throw new Error(`WHEP at ${at.id}: ${response.status} ${await response.text()}`);
			this.node = at.id;
			return response.text();
		});
	}
	/** Resolves when `count` more frames arrived. */
	async frames(count: number, timeoutMs: number): Promise<void> {
		const from = this.werift.frames;
		await this.werift.waitFor(() => this.werift.frames >= from + count, timeoutMs, `${count} frames at a viewer on ${this.node}`);
	}
	close(): Promise<void> {
		return this.werift.close();
	}
}

async function publish(publisher: WeriftPublisher, node: NodeProcess): Promise<void> {
	await publisher.connect(async (offer) => {
		const response = await postSdp(`${node.url}/whip/${BROADCAST}`, offer);
		if (response.status !== 201) throw new Error(`WHIP at ${node.id}: ${response.status} ${await response.text()}`);
		return response.text();
	});
}

/** Polls until `check` passes (it throws while not yet), within `timeoutMs`. */
async function eventually<T>(check: () => Promise<T>, timeoutMs: number, intervalMs = 100): Promise<T> {
	const end = performance.now() + timeoutMs;
	for (;;) {
		try {
			return await check();
		} catch (error) {
			if (performance.now() > end) throw error;
			await sleep(intervalMs);
		}
	}
}

describe('cluster: origin and edges on Redis, real node processes', () => {
	let redis: RedisProcess;
	const nodes: Record<string, NodeProcess> = {};
	let publisher: WeriftPublisher | undefined;
	const viewers: Viewer[] = [];

	beforeAll(async () => {
		redis = new RedisProcess(await freePort());
		await redis.start();
		// B carries two viewers (4 consumers); A and C the default budget.
		const [a, b, c] = await Promise.all([
			startNode('a', redis.port),
			startNode('b', redis.port, { BROADCAST_RELAY_CONSUMERS_PER_WORKER: '4' }),
			startNode('c', redis.port),
		]);
		Object.assign(nodes, { a, b, c });
	}, 60_000);

	afterAll(async () => {
		await Promise.all(viewers.map((v) => v.close().catch(() => undefined)));
		await publisher?.close().catch(() => undefined);
		await Promise.all([...children].map((child) => kill(child)));
	}, 30_000);

	it('(a) WHIP to A, viewers through B and C see video; B and C pull once each; no keyframe request reaches the broadcaster', async () => {
		publisher = new WeriftPublisher({ audio: true });
		await publish(publisher, nodes.a!);
		const onB = new Viewer();
		const onC = new Viewer();
		viewers.push(onB, onC);
		// The origin must be live (its re-encoder started) before an edge can pull.
		await eventually(async () => {
			await onB.play(nodes.b!, Object.values(nodes));
		}, 15_000, 300);
		const requestsBefore = publisher.keyframeRequests;
		await onC.play(nodes.c!, Object.values(nodes));
		await Promise.all([onB.frames(10, 10_000), onC.frames(10, 10_000)]);
		expect([onB.node, onC.node]).toEqual(['b', 'c']);
		await onB.werift.sendPli();
		await onC.werift.sendPli();
		await onB.frames(5, 5000);
		const view = await clusterView(nodes.a!);
		const served = view.pulls.served.filter((p) => p.broadcast === BROADCAST).map((p) => p.node).sort();
		expect(served).toEqual(['b', 'c']);
		const entry = view.broadcasts.find((b) => b.id === BROADCAST)!;
		expect(entry.origin).toBe('a');
		expect(entry.edges.map((e) => e.node).sort()).toEqual(['b', 'c']);
		expect(entry.tree.children.map((c) => c.node).sort()).toEqual(['b', 'c']);
		expect(publisher.keyframeRequests - requestsBefore).toBe(0);
	}, 60_000);

	it('(b) B full: a WHEP POST to B gets 307 to a node with room, and following it plays; B still pulls once', async () => {
		const second = new Viewer();
		viewers.push(second);
		await second.play(nodes.b!, Object.values(nodes));
		expect(second.node).toBe('b');
		const third = new Viewer();
		viewers.push(third);
		await third.play(nodes.b!, Object.values(nodes));
		expect(third.redirectedFrom).toBe('b');
		// An edge of the broadcast with room comes first: C.
		expect(third.node).toBe('c');
		await Promise.all([second.frames(10, 10_000), third.frames(10, 10_000)]);
		const view = await clusterView(nodes.a!);
		expect(view.pulls.served.filter((p) => p.node === 'b')).toHaveLength(1);
		expect(view.pulls.served.filter((p) => p.node === 'c')).toHaveLength(1);
		// A redirected request is served or refused, never sent on.
		const fourth = await postSdp(`${nodes.b!.url}/whep/${BROADCAST}?hop=1`, 'v=0\r\n');
		expect(fourth.status).toBe(503);
		expect(fourth.headers.get('retry-after')).not.toBeNull();
	}, 60_000);

	it('(e) Redis killed and restarted: viewers keep receiving, new placements get 503, the cluster view is whole again within 10 s', async () => {
		await redis.stop();
		const stoppedAt = performance.now();
		// Serving viewers go on without Redis.
		await Promise.all(viewers.map((v) => v.frames(10, 5000)));
		// A placement that needs the cluster state is refused with 503 and Retry-After.
		const refused = await postSdp(`${nodes.b!.url}/whep/another-broadcast`, 'v=0\r\n');
		expect(refused.status).toBe(503);
		expect(refused.headers.get('retry-after')).not.toBeNull();
		expect(performance.now() - stoppedAt).toBeLessThan(8000);
		await redis.start();
		const restartedAt = performance.now();
		await eventually(async () => {
			const view = await clusterView(nodes.a!);
			expect(view.redis).toBe('up');
			expect(view.nodes.map((n) => n.id)).toEqual(['a', 'b', 'c']);
			const entry = view.broadcasts.find((b) => b.id === BROADCAST);
			expect(entry?.origin).toBe('a');
			expect(entry?.edges.map((e) => e.node).sort()).toEqual(['b', 'c']);
		}, 10_000, 250);
		expect(performance.now() - restartedAt).toBeLessThan(10_000);
		await Promise.all(viewers.map((v) => v.frames(5, 5000)));
	}, 60_000);

	it('(c) SIGKILL an edge: its viewers re-POST through the entry node and play within 3 s; its lease is gone within 5 s; nothing of it stays on A or C', async () => {
		const onB = viewers.filter((v) => v.node === 'b');
		expect(onB.length).toBeGreaterThan(0);
		await kill(nodes.b!.child);
		const killedAt = performance.now();
		// The entry node (a load balancer's choice) is C here. WHEP clients re-POST when their session dies.
		await Promise.all(
			onB.map(async (viewer) => {
				const from = performance.now();
				await viewer.play(nodes.c!, Object.values(nodes));
				await viewer.frames(5, 3000);
				expect(performance.now() - from).toBeLessThan(3000);
			}),
		);
		await eventually(async () => {
			const view = await clusterView(nodes.a!);
			expect(view.nodes.map((n) => n.id)).toEqual(['a', 'c']);
		}, 5500, 100);
		expect(performance.now() - killedAt).toBeLessThan(5500);
		// A stops serving the dead edge's pull (its pipes) at its next heartbeat.
		await eventually(async () => {
			const view = await clusterView(nodes.a!);
			expect(view.pulls.served.map((p) => p.node)).toEqual(['c']);
			expect(view.broadcasts.find((b) => b.id === BROADCAST)?.edges.map((e) => e.node)).toEqual(['c']);
		}, 3000, 100);
		const onC = await clusterView(nodes.c!);
		expect(onC.pulls.served).toEqual([]);
		expect(onC.pulls.pulling).toEqual([{ broadcast: BROADCAST, upstream: 'a', origin: 'a', live: true }]);
		const pipeSessions = (metrics: string) => Number(/broadcast_relay_http_sessions\{kind="pipe"\} (\d+)/.exec(metrics)?.[1]);
		// C holds one pull of two tracks (video, audio): two pipe-ingest sessions, none left from anything else.
		expect(pipeSessions(await (await fetch(`${nodes.c!.url}/metrics`)).text())).toBe(2);
		expect(pipeSessions(await (await fetch(`${nodes.a!.url}/metrics`)).text())).toBe(0);
	}, 60_000);

	it('(d) SIGKILL the origin: the publisher re-publishes to another node, edges re-pull from it, viewers play again within 5 s', async () => {
		// B back as an edge with a viewer, so that an edge other than the new origin re-pulls.
		nodes.b = await startNode('b', redis.port);
		const onNewB = new Viewer();
		viewers.push(onNewB);
		await onNewB.play(nodes.b, Object.values(nodes));
		await onNewB.frames(5, 10_000);
		expect(onNewB.node).toBe('b');

		await kill(nodes.a!.child);
		const killedAt = performance.now();
		await publisher!.close();
		publisher = new WeriftPublisher({ audio: true });
		// The WHIP client reconnects, to C: A's lease has not run out, but A does not answer, so C takes over.
		await publish(publisher, nodes.c!);
		const alive = [nodes.b, nodes.c!];
		await Promise.all(
			viewers.map(async (viewer) => {
				const entry = viewer.node === 'b' ? nodes.b! : nodes.c!;
				await eventually(() => viewer.play(entry, alive), 5000, 200);
				await viewer.frames(5, 5000);
			}),
		);
		const elapsed = performance.now() - killedAt;
		expect(elapsed).toBeLessThan(5000);
		const view = await clusterView(nodes.c!);
		const entry = view.broadcasts.find((b) => b.id === BROADCAST)!;
		expect(entry.origin).toBe('c');
		expect(entry.edges.map((e) => e.node)).toEqual(['b']);
		expect(view.pulls.served.map((p) => p.node)).toEqual(['b']);
	}, 60_000);
});
