import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROADCAST, CLI, children, clusterView, eventually, kill, postSdp, publish, RedisProcess, startNode, Viewer, type NodeProcess, freePort } from './helpers/cluster.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

/*
 * A real cluster: a Redis of its own on a free loopback port and three relay
 * node processes (the CLI under tsx), distinct HTTP and RTC ports. The cases
 * run in order on one cluster, each leaving it as the next expects: (a)
 * origin and two edges, (b) a full node redirects, (e) Redis restarted,
 * (c) an edge killed, (d) the origin killed.
 */

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
		// Viewers' keyframe requests at the edges travel up the pipes and end at the origin's re-encoder.
		const received = async () => {
			const stats = (await (await fetch(`${nodes.a!.url}/api/broadcasts/${BROADCAST}`)).json()) as { reencoders: Array<{ kind: string; keyframeRequestsReceived?: number }> };
			return stats.reencoders.find((r) => r.kind === 'video')!.keyframeRequestsReceived ?? 0;
		};
		const receivedBefore = await received();
		await onB.werift.sendPli();
		await onC.werift.sendPli();
		await onB.frames(5, 5000);
		// Asked again at each look: mediasoup drops a request while one for the same stream still waits
		// for its keyframe (a viewer that just joined asked too), and engine stats come once a second.
		await eventually(
			async () => {
				await onB.werift.sendPli();
				await onC.werift.sendPli();
				expect(await received()).toBeGreaterThan(receivedBefore);
			},
			5000,
			400,
		);
		const view = await clusterView(nodes.a!);
		const served = view.pulls.served.filter((p) => p.broadcast === BROADCAST).map((p) => p.node).sort();
		expect(served).toEqual(['b', 'c']);
		const entry = view.broadcasts.find((b) => b.id === BROADCAST)!;
		expect(entry.origin).toBe('a');
		expect(entry.edges.map((e) => e.node).sort()).toEqual(['b', 'c']);
		expect(entry.tree.children.map((c) => c.node).sort()).toEqual(['b', 'c']);
		expect(publisher.keyframeRequests - requestsBefore).toBe(0);
		// The pull carries the origin's whole simulcast ladder: an edge viewer moves to the lowest layer and back on its own.
		const setMaxLayer = (maxLayer: number | null) =>
			fetch(onB.session, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxLayer }) });
		const size = () => `${onB.werift.keyframeSize?.width}x${onB.werift.keyframeSize?.height}`;
		expect((await setMaxLayer(0)).status).toBe(200);
		await onB.werift.waitFor(() => size() === '320x180', 8000, 'the lowest layer at an edge viewer');
		expect((await setMaxLayer(null)).status).toBe(200);
		await onB.werift.waitFor(() => size() === '1280x720', 8000, 'the top layer again at an edge viewer');
		expect(publisher.keyframeRequests - requestsBefore).toBe(0);
		// The same view from the CLI.
		const status = spawn(process.execPath, ['--import', 'tsx', CLI, 'status', '--cluster', '--relay', nodes.b!.url], { stdio: ['ignore', 'pipe', 'pipe'] });
		let out = '';
		status.stdout!.on('data', (d: Buffer) => (out += d.toString()));
		const [code] = (await once(status, 'exit')) as [number];
		expect(code).toBe(0);
		expect(out).toMatch(/cluster seen from node b: Redis up/);
		expect(out).toMatch(/show: origin a, 2 edge\(s\)/);
		expect(out).toMatch(/└ b \(1 viewers\)/);
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
		console.log(`cluster: Redis restarted, the cluster view whole again after ${Math.round(performance.now() - restartedAt)} ms`);
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
				console.log(`cluster: edge killed, a viewer re-POSTed through the entry node and had 5 frames ${Math.round(performance.now() - from)} ms after its POST (${Math.round(performance.now() - killedAt)} ms after the kill)`);
				expect(performance.now() - from).toBeLessThan(3000);
			}),
		);
		await eventually(async () => {
			const view = await clusterView(nodes.a!);
			expect(view.nodes.map((n) => n.id)).toEqual(['a', 'c']);
		}, 5500, 100);
		console.log(`cluster: the killed edge's lease gone from the view after ${Math.round(performance.now() - killedAt)} ms`);
		expect(performance.now() - killedAt).toBeLessThan(5500);
		// A stops serving the dead edge's pull (its pipes) at its next heartbeat.
		await eventually(async () => {
			const view = await clusterView(nodes.a!);
			expect(view.pulls.served.map((p) => p.node)).toEqual(['c']);
			expect(view.broadcasts.find((b) => b.id === BROADCAST)?.edges.map((e) => e.node)).toEqual(['c']);
		}, 3000, 100);
		const onC = await clusterView(nodes.c!);
		expect(onC.pulls.served).toEqual([]);
		// C holds one pull of two tracks (video, audio): two pipes into its feed, nothing left from anything else.
		expect(onC.pulls.pulling).toEqual([{ broadcast: BROADCAST, upstream: 'a', origin: 'a', live: true, pipes: 2 }]);
		const pipeSessions = (metrics: string) => Number(/broadcast_relay_http_sessions\{kind="pipe"\} (\d+)/.exec(metrics)?.[1]);
		expect(pipeSessions(await (await fetch(`${nodes.c!.url}/metrics`)).text())).toBe(0);
		expect(pipeSessions(await (await fetch(`${nodes.a!.url}/metrics`)).text())).toBe(0);
	}, 60_000);

	it('(d) SIGKILL the origin: the publisher re-publishes to another node, edges re-pull from it, their viewers play on without a new offer within 5 s', async () => {
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
		const onB = viewers.filter((v) => v.node === 'b');
		const peersOnB = onB.map((v) => v.werift);
		await Promise.all([
			// B stays an edge: it pulls from C now, and its viewers' sessions go on (the same peer, no new POST).
			...onB.map((viewer) => viewer.frames(5, 5000)),
			// C was an edge and is the origin now: its own edge broadcast ended, so its viewers POST again.
			...viewers
				.filter((v) => v.node === 'c')
				.map(async (viewer) => {
					await eventually(() => viewer.play(nodes.c!, alive), 5000, 200);
					await viewer.frames(5, 5000);
				}),
		]);
		const elapsed = performance.now() - killedAt;
		console.log(`cluster: origin killed, republished to another node; every viewer had 5 frames again ${Math.round(elapsed)} ms after the kill`);
		expect(elapsed).toBeLessThan(5000);
		expect(onB.map((v) => v.werift)).toEqual(peersOnB);
		// The viewers on B keep playing from the new origin.
		await Promise.all(onB.map((viewer) => viewer.frames(15, 5000)));
		const view = await clusterView(nodes.c!);
		const entry = view.broadcasts.find((b) => b.id === BROADCAST)!;
		expect(entry.origin).toBe('c');
		expect(entry.edges.map((e) => e.node)).toEqual(['b']);
		expect(view.pulls.served.map((p) => p.node)).toEqual(['b']);
	}, 60_000);
});
