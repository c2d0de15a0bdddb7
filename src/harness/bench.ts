import { pino } from 'pino';
import type { Broadcast } from '../Broadcast.js';
import type { Logger } from '../logger.js';
import { createRelay, type Relay } from '../Relay.js';
import type { Viewer } from '../viewers/Viewer.js';
import { once } from 'node:events';
import { AvOffsetProbe } from './AvOffsetProbe.js';
import { affinityOf, hasTaskset, parseCoreList, pinProcess, startBusyLoop } from './cpuPressure.js';
import { ensureClickClip, ensureClip } from './fixtures.js';
import { LatencyProbe } from './LatencyProbe.js';
import { LossyProxy, seededRandom } from './LossyProxy.js';
import { defaultAbrOptions, runAbr, type AbrOptions, type AbrReport } from './abr.js';
import { CpuMeter, rssBytes } from './procStats.js';
import { RtpSink } from './RtpSink.js';
import { ENGINES, SCENARIOS, type EngineName, type ScenarioName } from './scenarios.js';
import { runIsolatedSaturation, type IsolatedSaturationOptions, type IsolatedSaturationReport } from './saturation.js';
import { SyntheticBroadcaster } from './SyntheticBroadcaster.js';
import { WeriftViewer } from './WeriftViewer.js';

export { ENGINES, SCENARIOS, type EngineName, type ScenarioName };
export { defaultIsolatedSaturationOptions, isolatedSaturationMarkdown, type IsolatedSaturationReport } from './saturation.js';

/** The broadcaster's clips: barcode video, and audio with a click every `clickEveryFrames` frames (the A/V offset probe's marks). */
type Clip = { video: ReturnType<typeof ensureClip>; audio: string | undefined; clickEveryFrames: number };
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
	/**
	 * Re-encoder engines to compare: each scenario runs once in baseline mode and once in relay
	 * mode per engine, side by side. Default both (libav, ffmpeg).
	 */
	engines: EngineName[];
	/**
	 * The cpu-starved scenario: seconds of normal running, then of a busy loop on the re-encoder's
	 * core, then of recovery watched after it ends.
	 */
	starvation: { beforeSeconds: number; busySeconds: number; afterSeconds: number };
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
	/** The ABR scenario (abr.ts): Chromium viewers at mixed link capacities, a simulcast ladder against one rendition. Absent: not run. */
	abr?: AbrOptions;
	onProgress?: (progress: { label: string; done: number; total: number }) => void;
	logger?: Logger;
}

export interface Percentiles {
	p50: number;
	p95: number;
	samples: number;
}

/** Health of an engine as its stats report it (libav engine). */
export interface EngineHealth {
	state: 'ok' | 'degraded' | 'stalled';
	reason?: string;
}

/** A/V offset at a viewer, ms: audio click arrival − arrival of its video frame (positive: audio late). */
export interface OffsetPercentiles extends Percentiles {
	p5: number;
}

/** The cpu-starved scenario's figures, at a werift viewer that stays for the whole run. */
export interface StarvationResult {
	/** Whether the busy loop ran on the re-encoder's core (not in baseline mode, nor without taskset or a second core). */
	pressure: boolean;
	/** Core the re-encoder and the busy loop shared; the relay's Node, its workers and the viewers ran on the others. */
	core: number;
	busySeconds: number;
	decodableFpsBefore: number;
	decodableFpsUnderPressure: number;
	/** Lowest decodable fps of any 1 s window under pressure. */
	minDecodableFps1s: number;
	/** Longest time between two keyframes at the viewer under pressure, ms. */
	maxKeyframeGapMs: number;
	/** From the end of the busy loop to the first 1 s window at ≥ 90% of the broadcaster's rate, ms; NaN if not within the run. */
	timeToFullRateMs: number;
	/** The re-encoder's own fps (its stats) averaged over the pressure. */
	reencoderFpsUnderPressure: number;
	/** Worst health the engine reported under pressure (absent: its stats have no health, as the ffmpeg engine's). */
	healthUnderPressure?: EngineHealth;
}

export interface ScenarioResult {
	scenario: ScenarioName;
	mode: Mode;
	/** The re-encoder engine of a relay-mode run; absent in baseline mode. */
	engine?: EngineName;
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
	/** End-to-end latency less the same scenario's baseline (p50 − p50, p95 − p95): what the re-encoder adds. Relay mode only. */
	addedLatencyMs?: { p50: number; p95: number };
	/** Broadcaster send → RTP arrival of each frame at the measuring werift viewer (barcodes read there; VP8 only, else no samples). */
	latencyAtViewerMs: Percentiles;
	/** latencyAtViewerMs less the same scenario's baseline. Relay mode only. */
	addedLatencyAtViewerMs?: { p50: number; p95: number };
	/** Keyframes a werift viewer present for the whole run received, per minute (made by the re-encoder, or the broadcaster's in baseline). */
	viewerKeyframesPerMinute: number;
	/** Video bitrate each sink viewer received (SRTP bytes), kbit/s. */
	viewerVideoKbps: number;
	/** viewerVideoKbps over the steady scenario's in the same mode and engine (when steady ran): the PLI storm's cost in bitrate. */
	viewerBitrateVsSteady?: number;
	/** A/V offset at a werift viewer receiving audio and video (click in the audio at each 1 s barcode frame). */
	avOffsetMs: OffsetPercentiles;
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
	/** Video re-encoder over the run: restarts, processes seen, and its state at the end. Absent in baseline mode. */
	reencoder?: {
		restarts: number;
		processes: number;
		runningAtEnd: boolean;
		fpsAtEnd: number;
		/** From the engine's stats where it reports them (libav engine; absent with ffmpeg), per minute over the run. */
		keyframesPerMinute?: number;
		keyframesOnDemandPerMinute?: number;
		keyframeRequestsReceivedPerMinute?: number;
		upstreamKeyframeRequestsPerMinute?: number;
		healthAtEnd?: EngineHealth;
		/** Worst health reported at any sample of the run. */
		worstHealth?: EngineHealth;
	};
	starvation?: StarvationResult;
	events: string[];
}

/** A run that could not be done (e.g. an engine that failed to start): the report says so instead of its figures. */
export interface FailedRun {
	scenario: ScenarioName;
	mode: Mode;
	engine?: EngineName;
	error: string;
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
	failed: FailedRun[];
	saturation: SaturationResult[];
	isolatedSaturation?: IsolatedSaturationReport;
	/** The ABR scenario (Chromium viewers at mixed link capacities; ladder against a single rendition). */
	abr?: AbrReport;
}

/** The finite values sorted, and their q-quantile (nearest rank below; NaN when there are none). */
function quantiles(values: number[]): { samples: number; at: (q: number) => number } {
	const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
	return { samples: sorted.length, at: (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : Number.NaN) };
}

export function percentiles(values: number[]): Percentiles {
	const { samples, at } = quantiles(values);
	return { p50: at(0.5), p95: at(0.95), samples };
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
				engines: [...ENGINES],
				starvation: { beforeSeconds: 1, busySeconds: 3, afterSeconds: 2 },
				workers: 2,
				video: { codec: 'VP8', width: 320, height: 180, fps: 15, bitrateKbps: 300 },
				audio: true,
				keyframeIntervalSeconds: 1,
				saturation: { step: 20, stepSeconds: 1.5, maxConsumers: 40, lossThreshold: 0.5, cpuThreshold: 90 },
				seed: 1,
				abr: defaultAbrOptions(true, { width: 320, height: 180, fps: 15, bitrateKbps: 300 }),
			}
		: {
				smoke,
				scenarios: [...SCENARIOS],
				durationSeconds: 20,
				sinkViewers: 200,
				weriftViewers: 4,
				engines: [...ENGINES],
				starvation: { beforeSeconds: 5, busySeconds: 20, afterSeconds: 10 },
				workers: 2,
				video: { codec: 'VP8', width: 1280, height: 720, fps: 30, bitrateKbps: 1500 },
				audio: true,
				keyframeIntervalSeconds: 2,
				saturation: { step: 100, stepSeconds: 4, maxConsumers: 1500, lossThreshold: 0.5, cpuThreshold: 90 },
				seed: 1,
				abr: defaultAbrOptions(false, { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 }),
			};
}

/** The engine's own figures, read loosely: the libav engine reports them, the ffmpeg engine has none (shown as "–"). */
interface EngineStatsFields {
	engine?: EngineName;
	health?: EngineHealth;
	keyframes?: number;
	keyframesOnDemand?: number;
	keyframeRequestsReceived?: number;
	upstreamKeyframeRequests?: number;
	fps?: number;
}

const HEALTH_RANK: Record<EngineHealth['state'], number> = { ok: 0, degraded: 1, stalled: 2 };

function worse(a: EngineHealth | undefined, b: EngineHealth | undefined): EngineHealth | undefined {
	if (!a) return b;
	if (!b) return a;
	return HEALTH_RANK[b.state] > HEALTH_RANK[a.state] ? b : a;
}

function videoEngineStats(broadcast: Broadcast): EngineStatsFields | undefined {
	return broadcast.stats.reencoders.find((r) => r.kind === 'video') as EngineStatsFields | undefined;
}

/** Per minute over `seconds` of a counter read at the start and the end; undefined when the engine does not report it. */
function perMinute(before: number | undefined, after: number | undefined, seconds: number): number | undefined {
	return typeof before === 'number' && typeof after === 'number' ? ((after - before) / seconds) * 60 : undefined;
}

/** Frames in [from, to) of sorted times, per second. */
function rate(times: readonly number[], from: number, to: number): number {
	if (!(to > from)) return Number.NaN;
	return (times.filter((t) => t >= from && t < to).length * 1000) / (to - from);
}

/** What the cpu-starved scenario reads at its viewer, given when the busy loop ran. */
function starvationFigures(
	viewer: WeriftViewer,
	timeline: { started: number; busyStart: number; busyEnd: number; end: number },
	fps: number,
): Pick<StarvationResult, 'decodableFpsBefore' | 'decodableFpsUnderPressure' | 'minDecodableFps1s' | 'maxKeyframeGapMs' | 'timeToFullRateMs'> {
	const { started, busyStart, busyEnd, end } = timeline;
	const decodable = viewer.decodableFrameTimes;
	let minFps = Number.NaN;
	for (let t = busyStart; t + 1000 <= busyEnd; t += 250) {
		const fpsHere = rate(decodable, t, t + 1000);
		if (!(fpsHere >= minFps)) minFps = fpsHere;
	}
	const keyframes = viewer.keyframeTimes;
	const before = keyframes.filter((t) => t <= busyStart).at(-1);
	const points = [before ?? busyStart, ...keyframes.filter((t) => t > busyStart && t <= busyEnd), busyEnd];
	let maxGap = 0;
	for (let i = 1; i < points.length; i++) maxGap = Math.max(maxGap, points[i]! - points[i - 1]!);
	let timeToFullRate = Number.NaN;
	for (let t = busyEnd; t + 1000 <= end; t += 100) {
		if (rate(decodable, t, t + 1000) >= 0.9 * fps) {
			timeToFullRate = t - busyEnd;
			break;
		}
	}
	return {
		decodableFpsBefore: rate(decodable, started, busyStart),
		decodableFpsUnderPressure: rate(decodable, busyStart, busyEnd),
		minDecodableFps1s: minFps,
		maxKeyframeGapMs: maxGap,
		timeToFullRateMs: timeToFullRate,
	};
}

/** Seconds a scenario runs (the cpu-starved one: before, busy and after phases). */
function scenarioSeconds(scenario: ScenarioName, options: BenchOptions): number {
	const { beforeSeconds, busySeconds, afterSeconds } = options.starvation;
	return scenario === 'cpu-starved' ? beforeSeconds + busySeconds + afterSeconds : options.durationSeconds;
}

/** One scenario in one mode (and engine): a fresh relay, broadcaster, viewers and probes; everything closed at the end. */
async function runScenario(scenario: ScenarioName, mode: Mode, engine: EngineName | undefined, options: BenchOptions, clip: Clip, logger: Logger): Promise<ScenarioResult> {
	const events: string[] = [];
	const random = seededRandom(options.seed);
	// No CPU admission: the bench runs one broadcast at a time on purpose, on a machine a previous run may just have loaded.
	const relay = await createRelay({ workers: options.workers, logger, peerTimeoutMs: 60_000, cpuAdmission: false });
	const sink = await RtpSink.start();
	const broadcaster = new SyntheticBroadcaster({ clip: clip.video, audio: clip.audio, fps: options.video.fps });
	const weriftViewers: WeriftViewer[] = [];
	const proxies: LossyProxy[] = [];
	const sinkViewers: Viewer[] = [];
	let probe: LatencyProbe | undefined;
	let avViewer: WeriftViewer | undefined;
	let busyLoop: ReturnType<typeof startBusyLoop> | undefined;
	/** This process's cores before the cpu-starved scenario pinned it, given back at the end. */
	let ownCores: string | undefined;
	const label = engine ? `${mode} (${engine})` : mode;
	try {
		const broadcast = await goLive(relay, broadcaster, `${scenario}-${mode}${engine ? `-${engine}` : ''}`, mode, engine, options);

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
		// A measuring viewer present for the whole run, on a clean link, with audio: keyframes per
		// minute, decodable frames (cpu-starved), latency to a viewer and the A/V offset. It reads the barcodes itself where it receives VP8 (always from the re-encoder): frames and
		// clicks are timed by their RTP arrival at one peer, with no decoder delay in either.
		const readBarcodes = mode === 'relay' || options.video.codec === 'VP8';
		avViewer = new WeriftViewer({ audio: options.audio, readBarcodes });
		const measuring = avViewer;
		await measuring.connect(async (offer) => (await broadcast.addViewer(offer)).answer);
		// Measured from its first keyframe on, so its figures are a watching viewer's (time to first frame is the werift viewers').
		await measuring.waitFor(() => measuring.keyframeTimes.length > 0, 5000, 'its first keyframe').catch(() => events.push('the measuring viewer had no keyframe 5 s after joining'));
		probe = await LatencyProbe.start({
			broadcast,
			ports: relay.ports,
			ffmpegPath: relay.ffmpeg.path,
			sentAt: (index) => broadcaster.sentAt(index),
			clipFrames: broadcaster.clipFrames,
		});
		const frames = readBarcodes ? { arrivals: measuring.barcodeArrivals } : probe;
		const avOffset = clip.audio ? new AvOffsetProbe({ broadcaster, viewer: measuring, frames, clickEveryFrames: clip.clickEveryFrames }) : undefined;
		relay.on('viewerslost', ({ viewerIds }) => events.push(`worker died: ${viewerIds.length} viewers reported lost`));

		// The processes change under the meters (a killed re-encoder is restarted, a dead worker replaced): meter whichever run now.
		const workerCpu = new CpuMeter();
		const reencoderCpu = new CpuMeter();
		const workerPids = (): number[] => relay.pool.slots.filter((s) => !s.worker.died && !s.worker.closed).map((s) => s.worker.pid);
		const reencoderPid = (): number | undefined => broadcast.reencoder('video')?.pid;
		workerCpu.start(workerPids);
		reencoderCpu.start(() => {
			const pid = reencoderPid();
			return pid ? [pid] : [];
		});

		// cpu-starved: the re-encoder on the last core, everything else (this process, which is the relay
		// and the werift viewers, the workers, the sink, the probe) on the others; a busy loop joins the
		// re-encoder after the first phase.
		const starving = scenario === 'cpu-starved';
		const cores = parseCoreList(affinityOf(process.pid));
		const starvedCore = cores.at(-1)!;
		const otherCores = (cores.length > 1 ? cores.slice(0, -1) : cores).join(',');
		let pressure = starving && mode === 'relay';
		if (pressure && cores.length < 2) {
			events.push('cpu-starved needs two cores (the re-encoder on one, the relay on another): ran without pressure');
			pressure = false;
		}
		if (pressure && !hasTaskset()) {
			events.push('cpu-starved needs taskset (util-linux): ran without pressure');
			pressure = false;
		}
		if (starving && mode === 'baseline') events.push('no re-encoder in this mode: nothing to starve');
		let pinnedReencoder: number | undefined;
		const pinReencoder = (): void => {
			const pid = reencoderPid();
			if (!pid || pid === pinnedReencoder) return;
			if (pinProcess(pid, String(starvedCore))) pinnedReencoder = pid;
		};
		if (pressure) {
			ownCores = affinityOf(process.pid);
			for (const pid of [process.pid, ...workerPids(), sink.pid, probe.pid]) if (pid) pinProcess(pid, otherCores);
			pinReencoder();
			events.push(`re-encoder pid ${pinnedReencoder ?? '?'} pinned to core ${starvedCore}; relay, workers and viewers to ${otherCores}`);
		}

		await sink.reset();
		const requestsBefore = broadcaster.keyframeRequests;
		const bytesBefore = broadcaster.bytesSent;
		const engineBefore = mode === 'relay' ? videoEngineStats(broadcast) : undefined;
		const started = performance.now();
		const durationMs = scenarioSeconds(scenario, options) * 1000;
		const killAt = Math.floor(durationMs / 1000);
		const busyStart = started + options.starvation.beforeSeconds * 1000;
		let busyStarted = Number.NaN;
		let busyEnded = Number.NaN;
		let restarts = 0;
		let worstHealth: EngineHealth | undefined;
		let healthUnderPressure: EngineHealth | undefined;
		const fpsUnderPressure: number[] = [];
		broadcast.on('reencoderrestarted', ({ kind, restarts: count }) => {
			if (kind !== 'video') return;
			restarts += 1;
			events.push(`re-encoder restarted (restart ${count}) at ${((performance.now() - started) / 1000).toFixed(1)} s`);
		});

		let tick = 0;
		while (performance.now() - started < durationMs) {
			await sleep(500);
			tick += 1;
			workerCpu.sample();
			reencoderCpu.sample();
			const engineNow = mode === 'relay' ? videoEngineStats(broadcast) : undefined;
			worstHealth = worse(worstHealth, engineNow?.health);
			options.onProgress?.({ label: `${scenario} · ${label}`, done: performance.now() - started, total: durationMs });
			if (pressure) {
				pinReencoder(); // a restarted re-encoder is a new process, spawned from this (pinned) one
				if (!busyLoop && performance.now() >= busyStart) {
					busyLoop = startBusyLoop(starvedCore, options.starvation.busySeconds);
					busyStarted = performance.now();
					busyLoop.once('exit', () => {
						busyEnded = performance.now();
					});
					events.push(`busy loop on core ${starvedCore} for ${options.starvation.busySeconds} s from ${((busyStarted - started) / 1000).toFixed(1)} s`);
				}
				if (busyLoop && Number.isNaN(busyEnded)) {
					healthUnderPressure = worse(healthUnderPressure, engineNow?.health);
					if (typeof engineNow?.fps === 'number') fpsUnderPressure.push(engineNow.fps);
				}
			}
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
			} else if (scenario === 'ffmpeg-kill' && tick === killAt) {
				const pid = reencoderPid();
				if (pid) {
					process.kill(pid, 'SIGKILL');
					events.push(`killed the re-encoder process (${engine} engine, pid ${pid}) at ${((performance.now() - started) / 1000).toFixed(1)} s`);
				} else events.push('no re-encoder in this mode: nothing to kill');
			} else if (scenario === 'worker-kill' && tick === killAt) {
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
		const ended = performance.now();
		const seconds = (ended - started) / 1000;
		const workers = workerCpu.read();
		const reencoder = reencoderCpu.read();
		const streams = await sink.report();
		const received = streams.reduce((sum, s) => sum + s.packets, 0);
		const lost = streams.reduce((sum, s) => sum + s.lost, 0);
		const sinkBytes = streams.reduce((sum, s) => sum + s.bytes, 0);
		const requests = broadcaster.keyframeRequests - requestsBefore;
		const bitrate = ((broadcaster.bytesSent - bytesBefore) * 8) / seconds;
		const viewerCount = options.sinkViewers + options.weriftViewers;
		const ttff = weriftViewers.map((v) => v.timeToFirstFrame);
		const workerMemory = relay.pool.slots.reduce((sum, s) => sum + rssBytes(s.worker.pid), 0);
		const videoReencoder = mode === 'relay' ? (await broadcast.getStats()).reencoders.find((r) => r.kind === 'video') : undefined;
		const engineAfter = videoReencoder as EngineStatsFields | undefined;
		const offsets = avOffset?.offsets(started) ?? [];
		let starvation: StarvationResult | undefined;
		if (starving) {
			// Without pressure (baseline), the same windows as if the busy loop had run.
			const busyFrom = Number.isFinite(busyStarted) ? busyStarted : busyStart;
			const busyTo = Number.isFinite(busyEnded) ? busyEnded : Math.min(ended, busyFrom + options.starvation.busySeconds * 1000);
			starvation = {
				pressure,
				core: starvedCore,
				busySeconds: (busyTo - busyFrom) / 1000,
				...starvationFigures(measuring, { started, busyStart: busyFrom, busyEnd: busyTo, end: ended }, options.video.fps),
				reencoderFpsUnderPressure: average(fpsUnderPressure),
				...(healthUnderPressure ? { healthUnderPressure } : {}),
			};
		}
		return {
			scenario,
			mode,
			...(engine ? { engine } : {}),
			seconds,
			viewers: { sinks: options.sinkViewers, werift: weriftViewers.length },
			keyframeRequestsToBroadcaster: requests,
			keyframeRequestsPerMinute: (requests / seconds) * 60,
			broadcasterBitrateKbps: bitrate / 1000,
			broadcasterSteadyKbps: broadcaster.steadyBitrate / 1000,
			broadcasterBitrateRatio: bitrate / broadcaster.steadyBitrate,
			timeToFirstFrameMs: percentiles(ttff),
			endToEndLatencyMs: percentiles(probe.latencies),
			latencyAtViewerMs: percentiles(frameLatencies(broadcaster, measuring.barcodeArrivals.filter((a) => a.at >= started))),
			viewerKeyframesPerMinute: (measuring.keyframeTimes.filter((t) => t >= started).length / seconds) * 60,
			viewerVideoKbps: options.sinkViewers ? (sinkBytes * 8) / options.sinkViewers / seconds / 1000 : Number.NaN,
			avOffsetMs: offsetPercentiles(offsets),
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
				? {
						reencoder: {
							restarts,
							processes: reencoderCpu.processes,
							runningAtEnd: videoReencoder?.running ?? false,
							fpsAtEnd: videoReencoder?.fps ?? 0,
							...defined({
								keyframesPerMinute: perMinute(engineBefore?.keyframes, engineAfter?.keyframes, seconds),
								keyframesOnDemandPerMinute: perMinute(engineBefore?.keyframesOnDemand, engineAfter?.keyframesOnDemand, seconds),
								keyframeRequestsReceivedPerMinute: perMinute(engineBefore?.keyframeRequestsReceived, engineAfter?.keyframeRequestsReceived, seconds),
								upstreamKeyframeRequestsPerMinute: perMinute(engineBefore?.upstreamKeyframeRequests, engineAfter?.upstreamKeyframeRequests, seconds),
								healthAtEnd: engineAfter?.health,
								worstHealth: worse(worstHealth, engineAfter?.health),
							}),
						},
					}
				: {}),
			...(starvation ? { starvation } : {}),
			events,
		};
	} finally {
		if (busyLoop && busyLoop.exitCode === null && busyLoop.signalCode === null) {
			const exited = once(busyLoop, 'exit');
			busyLoop.kill('SIGKILL');
			await exited;
		}
		// This process runs the next scenarios (and, under vitest, the next tests): give it every core back.
		if (ownCores) pinProcess(process.pid, ownCores);
		await probe?.close().catch(() => undefined);
		await avViewer?.close().catch(() => undefined);
		await Promise.all(weriftViewers.map((v) => v.close().catch(() => undefined)));
		for (const proxy of proxies) proxy.close();
		await broadcaster.close();
		await relay.close();
		await sink.close();
	}
}

/**
 * Latency of each frame read at a viewer: its arrival less when the broadcaster last sent that
 * clip frame before it arrived (the clip loops every clipFrames frames).
 */
function frameLatencies(broadcaster: SyntheticBroadcaster, arrivals: ReadonlyArray<{ index: number; at: number }>): number[] {
	const latencies: number[] = [];
	const loops = Math.ceil(broadcaster.framesSent / broadcaster.clipFrames);
	for (const { index, at } of arrivals) {
		for (let loop = loops; loop >= 0; loop--) {
			const sent = broadcaster.videoFrameSentAt(loop * broadcaster.clipFrames + index);
			if (sent <= at) {
				if (at - sent < 2000) latencies.push(at - sent);
				break;
			}
		}
	}
	return latencies;
}

/** `object` without its undefined properties (so JSON and "–" in the report tell a missing figure from 0). */
function defined<T extends object>(object: T): Partial<T> {
	return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as Partial<T>;
}

export function offsetPercentiles(values: number[]): OffsetPercentiles {
	const { samples, at } = quantiles(values);
	return { p5: at(0.05), p50: at(0.5), p95: at(0.95), samples };
}

/** Adds sink viewers to one worker step by step until loss or the worker's CPU passes its threshold. */
async function runSaturation(mode: Mode, engine: EngineName | undefined, options: BenchOptions, clip: Clip, logger: Logger): Promise<SaturationResult> {
	const ramp = options.saturation!;
	// One worker carries everything, so its CPU and loss are the per-worker figures; the ingest and
	// encoder routers on it cost little next to hundreds of consumers.
	const relay = await createRelay({ workers: 1, logger, consumersPerWorker: ramp.maxConsumers + 10, consumersPerRouter: ramp.maxConsumers + 10, peerTimeoutMs: 60_000, cpuAdmission: false });
	const sink = await RtpSink.start();
	const broadcaster = new SyntheticBroadcaster({ clip: clip.video, audio: clip.audio, fps: options.video.fps });
	const steps: SaturationStep[] = [];
	let limitedBy: SaturationResult['limitedBy'] = 'max-tried';
	try {
		const broadcast = await goLive(relay, broadcaster, `saturation-${mode}`, mode, engine, options);
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
async function goLive(relay: Relay, broadcaster: SyntheticBroadcaster, id: string, mode: Mode, engine: EngineName | undefined, options: BenchOptions): Promise<Broadcast> {
	const { codec: _broadcasterCodec, ...video } = options.video;
	const broadcast = await relay.createBroadcast({ id, mode, ...(engine ? { engine } : {}), video: { ...video, keyframeIntervalSeconds: options.keyframeIntervalSeconds } });
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
 * Runs every scenario in baseline mode and in relay mode once per engine, one after the
 * other in this process, then the saturation ramp in both modes (relay with the first
 * engine). Each run stops by itself after its duration. A run that fails (an engine that
 * cannot start) is reported in `failed` and the others go on.
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
	const logger = options.logger ?? pino({ level: 'silent' });
	if (options.engines.length === 0) throw new TypeError(`engines is empty: pick one or more of ${ENGINES.join(', ')}`);
	// A click every second of media: a multiple of the 20 ms Opus packet at any integer frame rate.
	const clickEveryFrames = options.video.fps;
	const clip: Clip = {
		video: ensureClip({ ...options.video, seconds: 10 }),
		audio: options.audio ? ensureClickClip({ seconds: 10, fps: options.video.fps, clickEveryFrames }) : undefined,
		clickEveryFrames,
	};
	const scenarios: ScenarioResult[] = [];
	const failed: FailedRun[] = [];
	const runs: Array<{ mode: Mode; engine?: EngineName }> = [{ mode: 'baseline' }, ...options.engines.map((engine) => ({ mode: 'relay' as const, engine }))];
	for (const scenario of options.scenarios) {
		for (const { mode, engine } of runs) {
			try {
				scenarios.push(await runScenario(scenario, mode, engine, options, clip, logger));
			} catch (error) {
				failed.push({ scenario, mode, ...(engine ? { engine } : {}), error: (error as Error).message });
			}
		}
	}
	compareRuns(scenarios);
	const saturation: SaturationResult[] = [];
	if (options.saturation) {
		for (const mode of ['relay', 'baseline'] as const) saturation.push(await runSaturation(mode, mode === 'relay' ? options.engines[0] : undefined, options, clip, logger));
	}
	if (options.abr) options.onProgress?.({ label: 'abr (Chromium viewers, ladder and single rendition)', done: 0, total: 1 });
	const abr = options.abr ? await runAbr(options.abr, clip.video, logger) : undefined;
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
		failed,
		saturation,
		...(isolatedSaturation ? { isolatedSaturation } : {}),
		...(abr ? { abr } : {}),
	};
}

/** Figures that compare runs: latency added over the same scenario's baseline; bitrate over the steady scenario's. */
function compareRuns(results: ScenarioResult[]): void {
	for (const result of results) {
		const baseline = results.find((r) => r.scenario === result.scenario && r.mode === 'baseline');
		if (result.mode === 'relay' && baseline) {
			result.addedLatencyMs = {
				p50: result.endToEndLatencyMs.p50 - baseline.endToEndLatencyMs.p50,
				p95: result.endToEndLatencyMs.p95 - baseline.endToEndLatencyMs.p95,
			};
			result.addedLatencyAtViewerMs = {
				p50: result.latencyAtViewerMs.p50 - baseline.latencyAtViewerMs.p50,
				p95: result.latencyAtViewerMs.p95 - baseline.latencyAtViewerMs.p95,
			};
		}
		const steady = results.find((r) => r.scenario === 'steady' && r.mode === result.mode && r.engine === result.engine);
		if (steady && steady.viewerVideoKbps > 0) result.viewerBitrateVsSteady = result.viewerVideoKbps / steady.viewerVideoKbps;
	}
}
