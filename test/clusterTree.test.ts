import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROADCAST, children, clusterView, eventually, freePort, kill, publish, RedisProcess, startNode, useRtcPorts, Viewer, type NodeProcess } from './helpers/cluster.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

/*
 * The pull tree and the end of a broadcast, on a cluster of three node
 * processes whose origin serves one edge pull (maxEdgePulls 1): the second
 * edge pulls from the first.
 */
describe('cluster: pull tree and broadcast end', () => {
	let redis: RedisProcess;
	const nodes: Record<string, NodeProcess> = {};
	let publisher: WeriftPublisher | undefined;
	const viewers: Viewer[] = [];

	beforeAll(async () => {
		useRtcPorts(46000);
		redis = new RedisProcess(await freePort());
		await redis.start();
		const env = { BROADCAST_RELAY_CLUSTER_MAX_EDGE_PULLS: '1' };
		const [a, b, c] = await Promise.all([startNode('a', redis.port, env), startNode('b', redis.port, env), startNode('c', redis.port, env)]);
		Object.assign(nodes, { a, b, c });
	}, 60_000);

	afterAll(async () => {
		await Promise.all(viewers.map((v) => v.close().catch(() => undefined)));
		await publisher?.close().catch(() => undefined);
		await Promise.all([...children].map((child) => kill(child)));
	}, 30_000);

	it('an origin at its pull limit: the next edge pulls from an edge, and its viewers see video with no keyframe request at the broadcaster', async () => {
		publisher = new WeriftPublisher({ audio: true });
		await publish(publisher, nodes.a!);
		const onB = new Viewer();
		const onC = new Viewer();
		viewers.push(onB, onC);
		await eventually(() => onB.play(nodes.b!, Object.values(nodes)), 15_000, 300);
		await onB.frames(5, 10_000);
		const requestsBefore = publisher.keyframeRequests;
		await onC.play(nodes.c!, Object.values(nodes));
		await onC.frames(10, 10_000);
		await onC.werift.sendPli();
		await onC.frames(5, 5000);
		expect(publisher.keyframeRequests - requestsBefore).toBe(0);
		const view = await clusterView(nodes.c!);
		const entry = view.broadcasts.find((b) => b.id === BROADCAST)!;
		expect(entry.tree).toEqual({ node: 'a', viewers: 0, children: [{ node: 'b', viewers: 1, children: [{ node: 'c', viewers: 1, children: [] }] }] });
		expect(view.pulls.pulling).toEqual([{ broadcast: BROADCAST, upstream: 'b', origin: 'a', live: true, pipes: 2 }]);
	}, 60_000);

	it('the dashboard shows the cluster: every node and the pull tree', async () => {
		const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
		try {
			const page = await browser.newPage();
			await page.goto(`${nodes.c!.url}/`);
			await page.waitForSelector('#cluster:not([hidden]) #cluster-nodes tbody tr', { timeout: 10_000 });
			const rows = await page.locator('#cluster-nodes tbody tr td:first-child').allTextContents();
			expect(rows.map((r) => r.replace('● ', ''))).toEqual(['a', 'b', 'c']);
			expect(rows.find((r) => r.startsWith('● '))).toBe('● c');
			const trees = await page.locator('#cluster-trees').textContent();
			expect(trees).toMatch(/show \(origin a\)\n {2}a \(0 viewers\)\n {4}└ b \(1 viewers\)\n {6}└ c \(1 viewers\)/);
		} finally {
			await browser.close();
		}
	}, 30_000);

	it('the broadcast ends at its origin: every edge closes its pull, its broadcast and its viewers', async () => {
		const deleted = await fetch(`${nodes.a!.url}/api/broadcasts/${BROADCAST}`, { method: 'DELETE' });
		expect(deleted.status).toBe(204);
		for (const node of [nodes.b!, nodes.c!]) {
			await eventually(async () => {
				const broadcasts = (await (await fetch(`${node.url}/api/broadcasts`)).json()) as unknown[];
				expect(broadcasts).toEqual([]);
				expect((await clusterView(node)).pulls).toEqual({ served: [], pulling: [] });
			}, 3000, 100);
		}
		const view = await clusterView(nodes.a!);
		expect(view.broadcasts).toEqual([]);
	}, 30_000);
});
