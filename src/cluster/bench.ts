import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { testSourceArgs } from '../ffmpeg/args.js';
import { resolveFfmpeg } from '../ffmpeg/binary.js';
import { FfmpegProcess } from '../ffmpeg/FfmpegProcess.js';
import { CpuMeter } from '../harness/procStats.js';
import { WeriftViewer } from '../harness/WeriftViewer.js';
import { relayRequest } from '../relayClient.js';
import type { ClusterView } from './ClusterNode.js';

/*
 * `bench --cluster N`: N local node processes on one Redis, a synthetic
 * broadcaster on the first (the origin), werift viewers POSTed one after the
 * other to an entry node that fills up and redirects. Reports per node the
 * viewers, the pulls served and the CPU (node process and its children), the
 * origin's egress, and the time to first frame of redirected viewers against
 * direct ones. Every process it starts it stops.
 */

export interface ClusterBenchOptions {
	/** Nodes, 2 or more. */
	nodes: number;
	/** Viewers a node takes before it redirects (its budget: 1 worker × 2 consumers per viewer). */
	viewersPerNode: number;
	/** werift viewers in all. Default: nodes × viewersPerNode − 1. */
	viewers?: number;
	/** Seconds measured once every viewer has joined. */
	durationSeconds: number;
	/** Most edge pulls a node serves per broadcast. */
	maxEdgePulls: number;
	/** redis-server binary. */
	redisServer: string;
	/** How to start the CLI: node with these arguments, then "serve …". */
	cli: { execPath: string; args: string[] };
	onProgress?(line: string): void;
}

export interface ClusterBenchNode {
	id: string;
	role: string;
	viewers: number;
	pullsServed: number;
	upstream?: string;
	/** Cores used by the node (its process and children) over the measured window. */
	cpu: number;
}

export interface ClusterBenchReport {
	options: Omit<ClusterBenchOptions, 'cli' | 'onProgress'>;
	nodes: ClusterBenchNode[];
	/** The re-encoded stream's bitrate at the origin, kbit/s (video + audio). */
	streamKbps: number;
	/** Streams leaving the origin (pulls served + its own viewers) × streamKbps: its media egress, kbit/s. */
	originEgressKbps: number;
	ttffMs: { direct: Quantiles; redirected: Quantiles };
	/** Viewers that got no first frame within 10 s. */
	viewersWithoutVideo: number;
}

export interface Quantiles {
	n: number;
	p50: number;
	p95: number;
}

const BROADCAST = 'bench';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function quantiles(values: number[]): Quantiles {
	const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
	const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : Number.NaN);
	return { n: sorted.length, p50: at(0.5), p95: at(0.95) };
}

async function freePort(): Promise<number> {
	const server = createServer();
	await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
	const { port } = server.address() as { port: number };
	await new Promise((resolve) => server.close(resolve));
	return port;
}

/** A process and every descendant, from /proc. */
function processTree(root: number): number[] {
	const children = new Map<number, number[]>();
	for (const entry of readdirSync('/proc')) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
			const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
			children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
		} catch {
			/* gone */
		}
	}
	const out: number[] = [];
	const walk = (pid: number) => {
		out.push(pid);
		for (const child of children.get(pid) ?? []) walk(child);
	};
	walk(root);
	return out;
}

async function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
	let text = '';
	await new Promise<void>((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms: ${text.slice(-2000)}`)), timeoutMs);
		const onData = (d: Buffer) => {
			text += d.toString();
			if (pattern.test(text)) {
				clearTimeout(timer);
				resolve();
			}
		};
		child.stdout?.on('data', onData);
		child.stderr?.on('data', onData);
		child.once('exit', (code) => {
			clearTimeout(timer);
			reject(new Error(`${what} exited (${code}) before it started: ${text.slice(-2000)}`));
		});
	});
}

async function stop(child: ChildProcess): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return;
	const exited = once(child, 'exit');
	child.kill('SIGTERM');
	const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
	await exited;
	clearTimeout(timer);
}

export async function runClusterBench(options: ClusterBenchOptions): Promise<ClusterBenchReport> {
	const { nodes: count, viewersPerNode, durationSeconds, maxEdgePulls, redisServer, cli } = options;
	if (!Number.isInteger(count) || count < 2) throw new TypeError('bench --cluster needs 2 or more nodes');
	if (!Number.isInteger(viewersPerNode) || viewersPerNode < 1) throw new TypeError('viewersPerNode must be 1 or more');
	const total = options.viewers ?? count * viewersPerNode - 1;
	const progress = options.onProgress ?? (() => undefined);
	const processes: ChildProcess[] = [];
	const viewers: Array<{ viewer: WeriftViewer; redirected: boolean; node: string }> = [];
	let source: FfmpegProcess | undefined;
	try {
		const redisPort = await freePort();
		const redis = spawn(redisServer, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
		processes.push(redis);
		await waitForOutput(redis, /Ready to accept connections/, 10_000, 'redis-server');
		progress(`redis on 127.0.0.1:${redisPort}`);

		const nodes = await Promise.all(
			Array.from({ length: count }, async (_, i) => {
				const id = `node-${i + 1}`;
				const port = await freePort();
				const url = `http://127.0.0.1:${port}`;
				const child = spawn(cli.execPath, [...cli.args, 'serve', '--port', String(port), '--workers', '1', '--log-level', 'warn', '--cluster', `redis://127.0.0.1:${redisPort}`, '--node-id', id, '--public-url', url], {
					stdio: ['ignore', 'pipe', 'pipe'],
					env: {
						...process.env,
						BROADCAST_RELAY_CPU_ADMISSION: 'false',
						BROADCAST_RELAY_CONSUMERS_PER_WORKER: String(2 * viewersPerNode),
						BROADCAST_RELAY_CLUSTER_MAX_EDGE_PULLS: String(maxEdgePulls),
						BROADCAST_RELAY_RTC_MIN_PORT: String(44000 + i * 400),
						BROADCAST_RELAY_RTC_MAX_PORT: String(44000 + i * 400 + 399),
					},
				});
				processes.push(child);
				await waitForOutput(child, /broadcast-relay is up/, 60_000, `node ${id}`);
				return { id, url, child };
			}),
		);
		progress(`${count} nodes up`);

		// The broadcaster: FFmpeg's test pattern over plain RTP into the first node, which becomes the origin.
		const origin = nodes[0]!;
		await relayRequest(origin.url, '/api/broadcasts', { method: 'POST', body: { id: BROADCAST, video: { width: 640, height: 360, bitrateKbps: 800 } } });
		const { endpoints } = await relayRequest<{ endpoints: Array<{ kind: string; ip: string; port: number; rtcpPort: number }> }>(origin.url, `/api/broadcasts/${BROADCAST}/rtp-ingest`, {
			method: 'POST',
			body: { streams: [{ codec: 'VP8', payloadType: 96, ssrc: 1111 }, { codec: 'opus', payloadType: 111, ssrc: 2222 }] },
		});
		const video = endpoints.find((e) => e.kind === 'video')!;
		const audio = endpoints.find((e) => e.kind === 'audio')!;
		source = new FfmpegProcess({
			binary: resolveFfmpeg().path,
			args: testSourceArgs({
				video: { codec: 'VP8', width: 640, height: 360, fps: 30, bitrateKbps: 1000, keyframeIntervalSeconds: 4, threads: 1 },
				videoTarget: { host: video.ip, rtpPort: video.port, rtcpPort: video.rtcpPort, ssrc: 1111, payloadType: 96 },
				audioTarget: { host: audio.ip, rtpPort: audio.port, rtcpPort: audio.rtcpPort, ssrc: 2222, payloadType: 111 },
			}),
			logger: pino({ level: 'silent' }),
		});
		await source.start();
		for (let waited = 0; !(await relayRequest<{ live: boolean }>(origin.url, `/api/broadcasts/${BROADCAST}`)).live; waited += 200) {
			if (waited > 20_000) throw new Error('the origin did not go live within 20 s');
			await sleep(200);
		}
		progress('origin live');

		// Viewers POST to the entry node (the second node), which serves them until full and redirects the rest.
		const entry = nodes[1]!;
		for (let i = 0; i < total; i++) {
			const viewer = new WeriftViewer();
			let redirected = false;
			let at = entry.id;
			await viewer.connect(async (offer) => {
				let response = await fetch(`${entry.url}/whep/${BROADCAST}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: offer, redirect: 'manual' });
				if (response.status === 307) {
					redirected = true;
					const location = response.headers.get('location')!;
					at = nodes.find((n) => location.startsWith(n.url))?.id ?? location;
					response = await fetch(location, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: offer, redirect: 'manual' });
				}
				if (response.status !== 201) throw new Error(`viewer ${i + 1}: ${response.status} ${await response.text()}`);
				return response.text();
			});
			viewers.push({ viewer, redirected, node: at });
			await viewer.waitFor(() => viewer.keyframeTimes.length > 0, 10_000, 'a first frame').catch(() => undefined);
			progress(`viewer ${i + 1}/${total} on ${at}${redirected ? ' (redirected)' : ''}`);
		}

		const meters = nodes.map((n) => {
			const meter = new CpuMeter();
			meter.start(() => processTree(n.child.pid!));
			return meter;
		});
		const started = performance.now();
		while (performance.now() - started < durationSeconds * 1000) {
			await sleep(1000);
			for (const meter of meters) meter.sample();
		}
		const cpu = meters.map((m) => m.read());

		const view = await relayRequest<ClusterView>(origin.url, '/api/cluster');
		const stats = await relayRequest<{ reencoders: Array<{ bitrateKbps: number }> }>(origin.url, `/api/broadcasts/${BROADCAST}`);
		const streamKbps = stats.reencoders.reduce((sum, r) => sum + r.bitrateKbps, 0);
		const report: ClusterBenchReport = {
			options: { nodes: count, viewersPerNode, viewers: total, durationSeconds, maxEdgePulls, redisServer },
			nodes: nodes.map((n, i) => {
				const record = view.nodes.find((r) => r.id === n.id);
				const entryOf = record?.broadcasts.find((b) => b.id === BROADCAST);
				return { id: n.id, role: entryOf?.role ?? '-', viewers: entryOf?.viewers ?? 0, pullsServed: entryOf?.pulls.length ?? 0, upstream: entryOf?.upstream, cpu: cpu[i]! };
			}),
			streamKbps,
			originEgressKbps: 0,
			ttffMs: {
				direct: quantiles(viewers.filter((v) => !v.redirected).map((v) => v.viewer.timeToFirstFrame)),
				redirected: quantiles(viewers.filter((v) => v.redirected).map((v) => v.viewer.timeToFirstFrame)),
			},
			viewersWithoutVideo: viewers.filter((v) => v.viewer.keyframeTimes.length === 0).length,
		};
		const originNode = report.nodes[0]!;
		report.originEgressKbps = (originNode.pullsServed + originNode.viewers) * streamKbps;
		return report;
	} finally {
		await Promise.all(viewers.map((v) => v.viewer.close().catch(() => undefined)));
		await source?.close();
		await Promise.all(processes.slice(1).map(stop));
		if (processes[0]) await stop(processes[0]);
	}
}

const fmt = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '-');

export function clusterBenchMarkdown(report: ClusterBenchReport): string {
	const { options } = report;
	const lines = [
		`## Cluster benchmark: ${options.nodes} nodes, ${options.viewers} viewers, ${options.viewersPerNode} per node, maxEdgePulls ${options.maxEdgePulls}, ${options.durationSeconds} s measured`,
		'',
		'| node | role | upstream | viewers | pulls served | CPU (cores) |',
		'|---|---|---|---|---|---|',
		...report.nodes.map((n) => `| ${n.id} | ${n.role} | ${n.upstream ?? '-'} | ${n.viewers} | ${n.pullsServed} | ${fmt(n.cpu, 2)} |`),
		'',
		`Stream at the origin: ${fmt(report.streamKbps)} kbit/s; origin egress (pulls served + its viewers) × stream: ${fmt(report.originEgressKbps)} kbit/s.`,
		'',
		'| time to first frame | n | p50 ms | p95 ms |',
		'|---|---|---|---|',
		`| direct POST | ${report.ttffMs.direct.n} | ${fmt(report.ttffMs.direct.p50)} | ${fmt(report.ttffMs.direct.p95)} |`,
		`| through a 307 redirect | ${report.ttffMs.redirected.n} | ${fmt(report.ttffMs.redirected.p50)} | ${fmt(report.ttffMs.redirected.p95)} |`,
		'',
		`Viewers without a first frame within 10 s: ${report.viewersWithoutVideo}.`,
	];
	return lines.join('\n');
}
