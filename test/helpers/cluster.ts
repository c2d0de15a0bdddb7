import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { ClusterView } from '../../src/cluster/ClusterNode.js';
import { WeriftViewer } from '../../src/harness/WeriftViewer.js';
import { sleep } from './fixture.js';
import type { WeriftPublisher } from './weriftPublisher.js';

/* Cluster test fixtures: a Redis of its own, relay node processes (the CLI under tsx), WHIP/WHEP peers. */

export const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const REDIS = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server';
export const BROADCAST = 'show';
export const children = new Set<ChildProcess>();

export async function freePort(): Promise<number> {
	const server = createServer();
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	const { port } = server.address() as { port: number };
	await new Promise((resolve) => server.close(resolve));
	return port;
}

export function track(child: ChildProcess): { output: () => string } {
	children.add(child);
	let text = '';
	const add = (d: Buffer) => {
		text += d.toString();
		if (text.length > 200_000) text = text.slice(-100_000);
	};
	child.stdout?.on('data', add);
	child.stderr?.on('data', add);
	child.once('exit', () => children.delete(child));
	return { output: () => text };
}

export async function waitForText(get: () => string, pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
	const end = performance.now() + timeoutMs;
	while (!pattern.test(get())) {
		if (performance.now() > end) throw new Error(`${what}: no ${pattern} within ${timeoutMs} ms:\n${get().slice(-3000)}`);
		await sleep(50);
	}
}

export async function kill(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
	if (!child || child.exitCode !== null || child.signalCode !== null) return;
	const exited = once(child, 'exit');
	child.kill(signal);
	await exited;
}

export class RedisProcess {
	child?: ChildProcess;
	constructor(readonly port: number) {}
	async start(): Promise<void> {
		const child = spawn(REDIS, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
		const { output } = track(child);
		this.child = child;
		await waitForText(output, /Ready to accept connections/, 10_000, 'redis-server');
	}
	stop(): Promise<void> {
		return kill(this.child);
	}
}

export interface NodeProcess {
	id: string;
	url: string;
	child: ChildProcess;
	output(): string;
}

let rtcBase = 42000;

/** First RTC port of the next node (each takes 500): test files running side by side use distinct ranges. */
export function useRtcPorts(first: number): void {
	rtcBase = first;
}

export async function startNode(id: string, redisPort: number, env: Record<string, string> = {}): Promise<NodeProcess> {
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
	const { output } = track(child);
	await waitForText(output, /broadcast-relay is up/, 30_000, `node ${id}`);
	return { id, url, child, output };
}

export async function postSdp(url: string, sdp: string): Promise<Response> {
	return fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp, redirect: 'manual' });
}

export async function clusterView(node: NodeProcess): Promise<ClusterView> {
	const response = await fetch(`${node.url}/api/cluster`);
	expect(response.status).toBe(200);
	return (await response.json()) as ClusterView;
}

/** A WHEP viewer that remembers where it plays; play() POSTs (following one redirect, as WHEP clients do). */
export class Viewer {
	werift = new WeriftViewer();
	node = '';
	redirectedFrom?: string;
	/** The WHEP session URL at the node it plays from. */
	session = '';
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
			this.session = new URL(response.headers.get('location')!, at.url).toString();
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

export async function publish(publisher: WeriftPublisher, node: NodeProcess): Promise<void> {
	await publisher.connect(async (offer) => {
		const response = await postSdp(`${node.url}/whip/${BROADCAST}`, offer);
		if (response.status !== 201) throw new Error(`WHIP at ${node.id}: ${response.status} ${await response.text()}`);
		return response.text();
	});
}

/** Polls until `check` passes (it throws while not yet), within `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs: number, intervalMs = 100): Promise<T> {
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

