import { pino } from 'pino';
import type { Broadcast } from '../Broadcast.js';
import type { Logger } from '../logger.js';
import { createRelay, type Relay } from '../Relay.js';
import type { Viewer } from '../viewers/Viewer.js';
import { ensureClip, ensureOpusClip } from './fixtures.js';
import { LatencyProbe } from './LatencyProbe.js';
import { LossyProxy, seededRandom } from './LossyProxy.js';
import { CpuMeter, rssBytes } from './procStats.js';
import { RtpSink } from './RtpSink.js';
import { SCENARIOS, type ScenarioName } from './scenarios.js';
import { runIsolatedSaturation, type IsolatedSaturationOptions, type IsolatedSaturationReport } from './saturation.js';
import { SyntheticBroadcaster } from './SyntheticBroadcaster.js';
import { WeriftViewer } from './WeriftViewer.js';

export { SCENARIOS, type ScenarioName };
export { defaultIsolatedSaturationOptions, isolatedSaturationMarkdown, type IsolatedSaturationReport } from './saturation.js';

type Clip = { video: ReturnType<typeof ensureClip>; audio: string | undefined };
export type Mode = 'relay' | 'baseline';

export interface BenchOptions {
	/** A few seconds per scenario with a handful of viewers: keeps the harness working, measures nothing serious. */
	smoke: boolean;
	scenarios: ScenarioName[];
	/** Seconds each scenario runs, per mode. */
	durationSeconds: number;
	/** Load-test (RTP-sink) viewers per scenario. */
	sinkViewers: number;
	/** Real werift WebRTC viewers per scenario (fidelity: frames, keyframes, time to first frame). */
	weriftViewers: number;
	workers: number;
	/** The synthetic broadcaster's video; the re-encoder's output uses the same size, rate and bitrate. */
	video: { codec: 'VP8' | 'H264'; width: number; height: number; fps: number; bitrateKbps: number };
	/** Whether the broadcaster also sends Opus audio (passed through to viewers). */
	audio: boolean;
	keyframeIntervalSeconds: number;
	/** Saturation ramp: consumers added per step, seconds per step, and the most to try. */
	saturation: { step: number; stepSeconds: number; maxConsumers: number; lossThreshold: number; cpuThreshold: number } | undefined;
	/** Seed of the lossy links. */
	seed: number;
	/** The isolated saturation ramp (saturation.ts: worker on a core of its own; OpenSSL, NSS and raw mediasoup side by side). Default off. */
	isolatedSaturation?: IsolatedSaturationOptions;
	onProgress?: (progress: { label: string; done: number; total: number }) => void;
	logger?: Logger;
}

export interface Percentiles {
	p50: number;
	p95: number;
	samples: number;
}

export interface ScenarioResult {
	scenario: ScenarioName;
	mode: Mode;
	seconds: number;
	viewers: { sinks: number; werift: number };
	keyframeRequestsToBroadcaster: number;
	keyframeRequestsPerMinute: number;
	/** Broadcaster upstream bitrate over the run, and over its steady state (no requests). */
	broadcasterBitrateKbps: number;
	broadcasterSteadyKbps: number;
	broadcasterBitrateRatio: number;
	timeToFirstFrameMs: Percentiles;
	endToEndLatencyMs: Percentiles;
	framesPerWeriftViewer: number;
	keyframesPerWeriftViewer: number;
	sinkLossPercent: number;
	sinkPacketsPerViewer: number;
	/** mediasoup workers' CPU, in cores, and per 100 viewers. */
	workerCpuCores: number;
	workerCpuPer100Viewers: number;
	workerMemoryMiB: number;
	/** Node process (control plane plus this harness's own werift peers). */
	nodeMemoryMiB: number;
	/** The re-encoder's FFmpeg processes (video), summed across restarts; 0 in baseline mode. */
	reencoderCpuCores: number;
	/** Video re-encoder over the run: FFmpeg restarts, FFmpeg processes seen, and its state at the end. Absent in baseline mode. */
	reencoder?: { restarts: number; processes: number; runningAtEnd: boolean; fpsAtEnd: number };
	events: string[];
}

export interface SaturationStep {
	consumers: number;
	lossPercent: number;
	workerCpuPercent: number;
}

export interface SaturationResult {
	mode: Mode;
	steps: SaturationStep[];
	/** Most consumers on one worker with loss and CPU under the thresholds. */
	consumersAtSaturation: number;
	limitedBy: 'loss' | 'cpu' | 'max-tried';
}

export interface BenchReport {
	date: string;
	machine: { cpus: number; model: string; node: string };
	options: Omit<BenchOptions, 'onProgress' | 'logger'>;
	scenarios: ScenarioResult[];
	saturation: SaturationResult[];
	isolatedSaturation?: IsolatedSaturationReport;
}

export function percentiles(values: number[]): Percentiles {
	const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
	const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : Number.NaN);
	return { p50: at(0.5), p95: at(0.95), samples: sorted.length };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function defaultBenchOptions(smoke: boolean): BenchOptions {
	return smoke
		? {
				smoke,
				scenarios: [...SCENARIOS],
				durationSeconds: 3,
				sinkViewers: 10,
				weriftViewers: 1,
				workers: 2,
				video: { codec: 'VP8', width: 320, height: 180, fps: 15, bitrateKbps: 300 },
				audio: true,
				keyframeIntervalSeconds: 1,
				saturation: { step: 20, stepSeconds: 1.5, maxConsumers: 40, lossThreshold: 0.5, cpuThreshold: 90 },
				seed: 1,
			}
		: {
				smoke,
				scenarios: [...SCENARIOS],
				durationSeconds: 20,
				sinkViewers: 200,
				weriftViewers: 4,
				workers: 2,
				video: { codec: 'VP8', width: 1280, height: 720, fps: 30, bitrateKbps: 1500 },
				audio: true,
				keyframeIntervalSeconds: 2,
				saturation: { step: 100, stepSeconds: 4, maxConsumers: 1500, lossThreshold: 0.5, cpuThreshold: 90 },
				seed: 1,
			};
}

/** One scenario in one mode: a fresh relay, broadcaster, viewers and probe; everything closed at the end. */
async function runScenario(scenario: ScenarioName, mode: Mode, options: BenchOptions, clip: Clip, logger: Logger): Promise<ScenarioResult> {
	const events: string[] = [];
	const random = seededRandom(options.seed);
	const relay = await createRelay({ workers: options.workers, logger, peerTimeoutMs: 60_000 });
	const sink = await RtpSink.start();
	const broadcaster = new SyntheticBroadcaster({ clip: clip.video, audio: clip.audio, fps: options.video.fps });
	const weriftViewers: WeriftViewer[] = [];
	const proxies: LossyProxy[] = [];
	const sinkViewers: Viewer[] = [];
	let probe: LatencyProbe | undefined;
	try {
		const broadcast = await goLive(relay, broadcaster, `${scenario}-${mode}`, mode, options);

		const joinWerift = async (): Promise<WeriftViewer> => {
			const viewer = new WeriftViewer({ audio: false });
			weriftViewers.push(viewer);
			await viewer.connect(async (offer) => {
				const { answer } = await broadcast.addViewer(offer);
				if (scenario !== 'lossy') return answer;
				const proxy = await LossyProxy.start(LossyProxy.targetOf(answer), { drop: 0.03, delayMs: 20, jitterMs: 15 }, options.seed + proxies.length);
				proxies.push(proxy);
				return LossyProxy.redirectAnswer(answer, proxy.port);
			});
			return viewer;
		};
		const joinSink = async (): Promise<void> => {
			sinkViewers.push(await broadcast.addPlainViewer({ remote: { ip: '127.0.0.1', port: sink.port }, enableSrtp: true, kinds: ['video'] }));
		};

		for (let i = 0; i < options.sinkViewers; i++) await joinSink();
		for (let i = 0; i < options.weriftViewers; i++) await joinWerift();
		probe = await LatencyProbe.start({
			broadcast,
			ports: relay.ports,
			ffmpegPath: relay.ffmpeg.path,
			sentAt: (index) => broadcaster.sentAt(index),
			clipFrames: broadcaster.clipFrames,
		});
		relay.on('viewerslost', ({ viewerIds }) => events.push(`worker died: ${viewerIds.length} viewers reported lost`));

		// The processes change under the meters (a killed FFmpeg is restarted, a dead worker replaced): meter whichever run now.
		const workerCpu = new CpuMeter();
		const reencoderCpu = new CpuMeter();
		workerCpu.start(() => relay.pool.slots.filter((s) => !s.worker.died && !s.worker.closed).map((s) => s.worker.pid));
		reencoderCpu.start(() => {
			const pid = broadcast.reencoder('video')?.pid;
			return pid ? [pid] : [];
		});
		await sink.reset();
		const requestsBefore = broadcaster.keyframeRequests;
		const bytesBefore = broadcaster.bytesSent;
		const started = performance.now();
		const durationMs = options.durationSeconds * 1000;
		let restarts = 0;
		broadcast.on('reencoderrestarted', ({ kind, restarts: count }) => {
			if (kind !== 'video') return;
			restarts += 1;
			events.push(`re-encoder FFmpeg restarted (restart ${count}) at ${((performance.now() - started) / 1000).toFixed(1)} s`);
		});

		let tick = 0;
		while (performance.now() - started < durationMs) {
			await sleep(500);
			tick += 1;
			workerCpu.sample();
			reencoderCpu.sample();
			options.onProgress?.({ label: `${scenario} · ${mode}`, done: performance.now() - started, total: durationMs });
			if (scenario === 'churn') {
				// Sinks: a tenth of them leave and join each second; werift: one leaves and joins each second.
				if (tick % 2 === 0) {
					const leaving = sinkViewers.splice(0, Math.max(1, Math.floor(options.sinkViewers / 10)));
					for (const viewer of leaving) viewer.close();
					for (let i = 0; i < leaving.length; i++) await joinSink();
					const gone = weriftViewers.find((v) => v.frames > 0 && !v.pc.connectionState.includes('closed'));
					if (gone) await gone.close();
					// Join at a random phase of the keyframe interval, so time to first frame samples it fairly.
					await sleep(random() * options.keyframeIntervalSeconds * 500);
					await joinWerift();
				}
			} else if (scenario === 'pli-storm') {
				await Promise.all(sinkViewers.map((v) => v.requestKeyFrame().catch(() => undefined)));
				await Promise.all(weriftViewers.map((v) => v.sendPli().catch(() => undefined)));
			} else if (scenario === 'ffmpeg-kill' && tick === Math.floor(durationMs / 1000)) {
				const pid = broadcast.reencoder('video')?.pid;
				if (pid) {
					process.kill(pid, 'SIGKILL');
					events.push(`killed the re-encoder's FFmpeg (pid ${pid}) at ${((performance.now() - started) / 1000).toFixed(1)} s`);
				} else events.push('no re-encoder in this mode: nothing to kill');
			} else if (scenario === 'worker-kill' && tick === Math.floor(durationMs / 1000)) {
				const { ingest } = broadcast.stats;
				const victim = relay.pool.slots.find((s) => s.index !== ingest.workerIndex && s.index !== ingest.encoderWorkerIndex) ?? relay.pool.slots.at(-1)!;
				process.kill(victim.worker.pid, 'SIGKILL');
				events.push(`killed worker #${victim.index} (pid ${victim.worker.pid}) at ${((performance.now() - started) / 1000).toFixed(1)} s`);
				await sleep(500);
				// Lost viewers come back, as a player would reconnect them.
				const lostSinks = sinkViewers.filter((v) => v.closed);
				for (const viewer of lostSinks) sinkViewers.splice(sinkViewers.indexOf(viewer), 1);
				for (let i = 0; i < lostSinks.length; i++) await joinSink().catch(() => undefined);
				events.push(`reconnected ${lostSinks.length} sink viewers`);
			}
		}
		const seconds = (performance.now() - started) / 1000;
		const workers = workerCpu.read();
		const reencoder = reencoderCpu.read();
		const streams = await sink.report();
		const received = streams.reduce((sum, s) => sum + s.packets, 0);
		const lost = streams.reduce((sum, s) => sum + s.lost, 0);
		const requests = broadcaster.keyframeRequests - requestsBefore;
		const bitrate = ((broadcaster.bytesSent - bytesBefore) * 8) / seconds;
		const viewerCount = options.sinkViewers + options.weriftViewers;
		const ttff = weriftViewers.map((v) => v.timeToFirstFrame);
		const workerMemory = relay.pool.slots.reduce((sum, s) => sum + rssBytes(s.worker.pid), 0);
		const videoReencoder = mode === 'relay' ? (await broadcast.getStats()).reencoders.find((r) => r.kind === 'video') : undefined;
		return {
			scenario,
			mode,
			seconds,
			viewers: { sinks: options.sinkViewers, werift: weriftViewers.length },
			keyframeRequestsToBroadcaster: requests,
			keyframeRequestsPerMinute: (requests / seconds) * 60,
			broadcasterBitrateKbps: bitrate / 1000,
			broadcasterSteadyKbps: broadcaster.steadyBitrate / 1000,
			broadcasterBitrateRatio: bitrate / broadcaster.steadyBitrate,
			timeToFirstFrameMs: percentiles(ttff),
			endToEndLatencyMs: percentiles(probe.latencies),
			framesPerWeriftViewer: average(weriftViewers.map((v) => v.frames)),
			keyframesPerWeriftViewer: average(weriftViewers.map((v) => v.keyframeTimes.length)),
			sinkLossPercent: received + lost > 0 ? (lost / (received + lost)) * 100 : Number.NaN,
			sinkPacketsPerViewer: streams.length ? received / streams.length : 0,
			workerCpuCores: workers,
			workerCpuPer100Viewers: viewerCount ? (workers / viewerCount) * 100 : 0,
			workerMemoryMiB: workerMemory / 2 ** 20,
			nodeMemoryMiB: rssBytes(process.pid) / 2 ** 20,
			reencoderCpuCores: reencoder,
			...(mode === 'relay'
				? { reencoder: { restarts, processes: reencoderCpu.processes, runningAtEnd: videoReencoder?.running ?? false, fpsAtEnd: videoReencoder?.fps ?? 0 } }
				: {}),
			events,
		};
	} finally {
		await probe?.close().catch(() => undefined);
		await Promise.all(weriftViewers.map((v) => v.close().catch(() => undefined)));
		for (const proxy of proxies) proxy.close();
		await broadcaster.close();
		await relay.close();
		await sink.close();
	}
}

/** Adds sink viewers to one worker step by step until loss or the worker's CPU passes its threshold. */
async function runSaturation(mode: Mode, options: BenchOptions, clip: Clip, logger: Logger): Promise<SaturationResult> {
	const ramp = options.saturation!;
	// One worker carries everything, so its CPU and loss are the per-worker figures; the ingest and
	// encoder routers on it cost little next to hundreds of consumers.
	const relay = await createRelay({ workers: 1, logger, consumersPerWorker: ramp.maxConsumers + 10, consumersPerRouter: ramp.maxConsumers + 10, peerTimeoutMs: 60_000 });
	const sink = await RtpSink.start();
	const broadcaster = new SyntheticBroadcaster({ clip: clip.video, audio: clip.audio, fps: options.video.fps });
	const steps: SaturationStep[] = [];
	let limitedBy: SaturationResult['limitedBy'] = 'max-tried';
	try {
		const broadcast = await goLive(relay, broadcaster, `saturation-${mode}`, mode, options);
		const viewerWorker = relay.pool.slots[0]!;
		let consumers = 0;
		while (consumers < ramp.maxConsumers) {
			for (let i = 0; i < ramp.step; i++) {
				await broadcast.addPlainViewer({ remote: { ip: '127.0.0.1', port: sink.port }, enableSrtp: true, kinds: ['video'] });
			}
			consumers += ramp.step;
			await sleep(500);
			await sink.reset();
			const cpu = new CpuMeter();
			cpu.start([viewerWorker.worker.pid]);
			await sleep(ramp.stepSeconds * 1000);
			const streams = await sink.report();
			const received = streams.reduce((sum, s) => sum + s.packets, 0);
			const lost = streams.reduce((sum, s) => sum + s.lost, 0);
			const step = { consumers, lossPercent: received + lost ? (lost / (received + lost)) * 100 : 0, workerCpuPercent: cpu.read() * 100 };
			steps.push(step);
			options.onProgress?.({ label: `saturation · ${mode}`, done: consumers, total: ramp.maxConsumers });
			if (step.lossPercent > ramp.lossThreshold) {
				limitedBy = 'loss';
				break;
			}
			if (step.workerCpuPercent > ramp.cpuThreshold) {
				limitedBy = 'cpu';
				break;
			}
		}
	} finally {
		await broadcaster.close();
		await relay.close();
		await sink.close();
	}
	const ok = steps.filter((s) => s.lossPercent <= ramp.lossThreshold && s.workerCpuPercent <= ramp.cpuThreshold);
	return { mode, steps, consumersAtSaturation: ok.at(-1)?.consumers ?? 0, limitedBy };
}

/** Creates the broadcast, publishes the synthetic broadcaster and waits until viewers would get video. */
async function goLive(relay: Relay, broadcaster: SyntheticBroadcaster, id: string, mode: Mode, options: BenchOptions): Promise<Broadcast> {
	const { codec: _broadcasterCodec, ...video } = options.video;
	const broadcast = await relay.createBroadcast({ id, mode, video: { ...video, keyframeIntervalSeconds: options.keyframeIntervalSeconds } });
	await broadcaster.connect(async (offer) => (await broadcast.publish(offer)).answer);
	broadcaster.start();
	// The re-encoder runs before anyone watches, as in a broadcast that is already live.
	await waitFor(() => broadcast.live && (mode === 'baseline' || (broadcast.reencoder('video')?.stats.framesEncoded ?? 0) > 0), 20_000);
	return broadcast;
}

function average(values: number[]): number {
	return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<void> {
	const deadline = performance.now() + timeoutMs;
	while (!predicate()) {
		if (performance.now() > deadline) throw new Error(`benchmark set-up timed out after ${timeoutMs} ms`);
		await sleep(50);
	}
}

/**
 * Runs every scenario in relay and baseline mode, one after the other in this
 * process, then the saturation ramp in both modes. Each run stops by itself
 * after its duration.
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
	const logger = options.logger ?? pino({ level: 'silent' });
	const clip: Clip = { video: ensureClip({ ...options.video, seconds: 10 }), audio: options.audio ? ensureOpusClip(10) : undefined };
	const scenarios: ScenarioResult[] = [];
	for (const scenario of options.scenarios) {
		for (const mode of ['relay', 'baseline'] as const) scenarios.push(await runScenario(scenario, mode, options, clip, logger));
	}
	const saturation: SaturationResult[] = [];
	if (options.saturation) for (const mode of ['relay', 'baseline'] as const) saturation.push(await runSaturation(mode, options, clip, logger));
	const isolatedSaturation = options.isolatedSaturation
		? await runIsolatedSaturation(options.isolatedSaturation, (label) => options.onProgress?.({ label: `isolated saturation · ${label}`, done: 0, total: 1 }))
		: undefined;
	const os = await import('node:os');
	const { onProgress: _p, logger: _l, ...rest } = options;
	return {
		date: new Date().toISOString(),
		machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version },
		options: rest,
		scenarios,
		saturation,
		...(isolatedSaturation ? { isolatedSaturation } : {}),
	};
}
