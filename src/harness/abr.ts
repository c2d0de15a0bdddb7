/**
 * The ABR scenario: real Chromium viewers at mixed link capacities (a
 * rate-capped loopback proxy each), watching one broadcast re-encoded as a
 * simulcast ladder, and the same with a single rendition, side by side. Per
 * viewer class: the picture size received, decoded frames per second, freeze
 * time (no new frame for more than 500 ms), packet loss; the time a layer
 * switch takes at a viewer; the re-encoder's CPU for the ladder against one
 * rendition.
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Broadcast } from '../Broadcast.js';
import { createRelay } from '../Relay.js';
import type { ensureClip } from './fixtures.js';
import { LossyProxy } from './LossyProxy.js';
import { CpuMeter } from './procStats.js';
import { SyntheticBroadcaster } from './SyntheticBroadcaster.js';

/** A viewer class: its link's capacity relay→viewer, kbit/s (undefined: unlimited). */
export interface AbrViewerClass {
	label: string;
	rateKbps?: number;
}

export interface AbrOptions {
	classes: AbrViewerClass[];
	viewersPerClass: number;
	/** Seconds for bandwidth estimation to settle before measuring, then seconds measured. */
	settleSeconds: number;
	measureSeconds: number;
	/** Top rendition (the single rendition of the comparison run). */
	video: { width: number; height: number; fps: number; bitrateKbps: number };
	keyframeIntervalSeconds: number;
	/** Layers of the ladder run. */
	layers: number;
	chromiumPath: string;
}

export interface AbrClassResult {
	label: string;
	rateKbps: number | null;
	viewers: number;
	/** Picture size most often decoded while measured, e.g. "640x360", and the relay's layer for it. */
	size: string;
	layer: number | null;
	fps: number;
	/** Share of the measured time with no new frame for more than 500 ms, percent (all viewers of the class). */
	freezePercent: number;
	lossPercent: number;
}

export interface AbrRunResult {
	run: 'ladder' | 'single';
	layers: number;
	/** The engine process's CPU while measured, cores. */
	reencoderCpuCores: number;
	classes: AbrClassResult[];
	/** Ladder only: a viewer moved down to layer 0 and back up by its maximum layer: ms until its decoded size changed. */
	layerSwitchMs?: { down: number; up: number };
	/** Relay-side layer switches during the run, all viewers. */
	switches: number;
}

export interface AbrReport {
	runs: AbrRunResult[];
	/** Why the scenario did not run (no Chromium, no playwright-core). */
	skipped?: string;
}

export function defaultAbrOptions(smoke: boolean, video: AbrOptions['video']): AbrOptions {
	return {
		classes: [
			{ label: '300 kbit/s', rateKbps: 300 },
			{ label: '1 Mbit/s', rateKbps: 1000 },
			{ label: 'unlimited' },
		],
		viewersPerClass: smoke ? 1 : 2,
		settleSeconds: smoke ? 4 : 12,
		measureSeconds: smoke ? 3 : 20,
		video,
		keyframeIntervalSeconds: 2,
		layers: 3,
		chromiumPath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
	};
}

/** In-page samples every 100 ms: time, frames decoded, size, packets received and lost. */
type Sample = [at: number, frames: number, width: number, height: number, received: number, lost: number];

/** The page's globals, for the functions that run in Chromium (this file is compiled without the DOM library). */
declare const window: { abrSamples: Sample[]; joinRelay(offer: string, rate: number): Promise<string> };
interface PagePeerConnection {
	addTransceiver(kind: 'video', init: { direction: 'recvonly' }): void;
	createOffer(): Promise<{ type: 'offer'; sdp: string }>;
	setLocalDescription(description: { type: 'offer'; sdp: string }): Promise<void>;
	readonly localDescription: { sdp: string } | null;
	setRemoteDescription(description: { type: 'answer'; sdp: string }): Promise<void>;
	getStats(): Promise<Map<string, { type: string; kind?: string; framesDecoded?: number; frameWidth?: number; frameHeight?: number; packetsReceived?: number; packetsLost?: number }>>;
}
declare const RTCPeerConnection: new () => PagePeerConnection;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runAbr(options: AbrOptions, clip: ReturnType<typeof ensureClip>, logger: Logger): Promise<AbrReport> {
	if (!existsSync(options.chromiumPath)) return { runs: [], skipped: `no Chromium at ${options.chromiumPath} (set CHROMIUM_PATH)` };
	let chromium: typeof import('playwright-core').chromium;
	try {
		({ chromium } = await import('playwright-core'));
	} catch {
		return { runs: [], skipped: 'playwright-core is not installed (a dev dependency: run the bench from a clone)' };
	}
	const browser = await chromium.launch({ executablePath: options.chromiumPath, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic', '--disable-background-networking'] });
	try {
		const runs: AbrRunResult[] = [];
		for (const run of ['ladder', 'single'] as const) runs.push(await runOnce(run, options, clip, browser, logger));
		return { runs };
	} finally {
		await browser.close();
	}
}

async function runOnce(run: 'ladder' | 'single', options: AbrOptions, clip: ReturnType<typeof ensureClip>, browser: import('playwright-core').Browser, logger: Logger): Promise<AbrRunResult> {
	const relay = await createRelay({ workers: 2, cpuAdmission: false, logger });
	const proxies: LossyProxy[] = [];
	const broadcaster = new SyntheticBroadcaster({ clip, fps: options.video.fps });
	const context = await browser.newContext();
	try {
		const layers = run === 'ladder' ? options.layers : 1;
		const broadcast = await relay.createBroadcast({ id: `abr-${run}`, engine: 'libav', video: { ...options.video, keyframeIntervalSeconds: options.keyframeIntervalSeconds, layers } });
		await broadcaster.connect(async (offer) => (await broadcast.publish(offer)).answer);
		broadcaster.start();
		await waitFor(() => broadcast.live && (broadcast.reencoder('video')?.stats.framesEncoded ?? 0) > 0, 20_000, 'the broadcast to go live');

		// Each page offers; Node adds the viewer and, for a capped class, points the answer at its proxy.
		const viewerIds: string[] = [];
		await context.exposeFunction('joinRelay', async (offer: string, rateKbps: number) => {
			const { viewer, answer } = await broadcast.addViewer(offer);
			viewerIds.push(viewer.id);
			if (!rateKbps) return answer;
			const proxy = await LossyProxy.start(LossyProxy.targetOf(answer), { drop: 0, delayMs: 10, jitterMs: 0, rateKbps, queueMs: 250 }, 1);
			proxies.push(proxy);
			return LossyProxy.redirectAnswer(answer, proxy.port);
		});
		const pages: Array<{ page: import('playwright-core').Page; viewerClass: AbrViewerClass; viewerId: string }> = [];
		for (const viewerClass of options.classes) {
			for (let i = 0; i < options.viewersPerClass; i++) {
				const page = await context.newPage();
				await page.evaluate(WATCH_IN_PAGE, viewerClass.rateKbps ?? 0);
				pages.push({ page, viewerClass, viewerId: viewerIds.at(-1)! });
			}
		}
		await sleep(options.settleSeconds * 1000);

		const cpu = new CpuMeter();
		cpu.start(() => {
			const pid = broadcast.reencoder('video')?.pid;
			return pid ? [pid] : [];
		});
		const from = await pages[0]!.page.evaluate(() => performance.timeOrigin + performance.now());
		const switchesBefore = broadcast.stats.layers.switches;
		const layerOf = new Map<string, number | null>();
		const cpuTimer = setInterval(() => cpu.sample(), 1000);
		await sleep(options.measureSeconds * 1000);
		clearInterval(cpuTimer);
		const reencoderCpuCores = cpu.read();
		for (const { viewerId } of pages) layerOf.set(viewerId, broadcast.viewers.get(viewerId)?.layers?.info.current ?? null);
		const to = await pages[0]!.page.evaluate(() => performance.timeOrigin + performance.now());

		const classes: AbrClassResult[] = [];
		for (const viewerClass of options.classes) {
			const members = pages.filter((p) => p.viewerClass === viewerClass);
			const figures = await Promise.all(members.map(async ({ page }) => viewerFigures(await samplesOf(page), from, to)));
			const sizes = figures.flatMap((f) => f.sizes);
			const size = mostCommon(sizes) ?? '–';
			const layers = members.map((m) => layerOf.get(m.viewerId)).filter((l): l is number => l !== null && l !== undefined);
			classes.push({
				label: viewerClass.label,
				rateKbps: viewerClass.rateKbps ?? null,
				viewers: members.length,
				size,
				layer: layers.length ? (mostCommon(layers.map(String)) !== undefined ? Number(mostCommon(layers.map(String))) : null) : null,
				fps: round(figures.reduce((sum, f) => sum + f.fps, 0) / Math.max(1, figures.length), 1),
				freezePercent: round((figures.reduce((sum, f) => sum + f.frozenMs, 0) / Math.max(1, figures.length * (to - from))) * 100, 2),
				lossPercent: round(figures.reduce((sum, f) => sum + f.lossPercent, 0) / Math.max(1, figures.length), 2),
			});
		}
		const result: AbrRunResult = { run, layers, reencoderCpuCores: round(reencoderCpuCores, 2), classes, switches: broadcast.stats.layers.switches - switchesBefore };
		if (run === 'ladder' && layers > 1) {
			const unlimited = pages.find((p) => p.viewerClass.rateKbps === undefined);
			if (unlimited) result.layerSwitchMs = await timeLayerSwitch(broadcast, unlimited.page, unlimited.viewerId, layers - 1);
		}
		return result;
	} finally {
		await context.close();
		for (const proxy of proxies) proxy.close();
		await broadcaster.close();
		await relay.close();
	}
}

/** Sets the viewer's maximum layer to 0 and back to the top; ms until the decoded picture size changed each time. */
async function timeLayerSwitch(broadcast: Broadcast, page: import('playwright-core').Page, viewerId: string, top: number): Promise<{ down: number; up: number }> {
	const sizeNow = async (): Promise<string> => {
		const samples = await samplesOf(page);
		const last = samples.at(-1);
		return last ? `${last[2]}x${last[3]}` : '';
	};
	const timeTo = async (layer: number | undefined): Promise<number> => {
		const before = await sizeNow();
		const started = performance.now();
		await broadcast.setViewerMaxLayer(viewerId, layer);
		while (performance.now() - started < 5000) {
			await sleep(50);
			const now = await sizeNow();
			if (now && now !== before && now !== '0x0') return Math.round(performance.now() - started);
		}
		return Number.NaN;
	};
	const down = await timeTo(0);
	await sleep(1000);
	const up = await timeTo(undefined);
	void top;
	return { down, up };
}

/** Frames per second, time frozen (gaps over 500 ms between new frames), sizes seen and loss, over [from, to]. */
function viewerFigures(samples: Sample[], from: number, to: number): { fps: number; frozenMs: number; sizes: string[]; lossPercent: number } {
	const window = samples.filter(([at]) => at >= from && at <= to);
	if (window.length < 2) return { fps: 0, frozenMs: to - from, sizes: [], lossPercent: 0 };
	const first = window[0]!;
	const last = window.at(-1)!;
	let frozenMs = 0;
	let lastNewFrameAt = first[0];
	let frames = first[1];
	for (const [at, decoded] of window) {
		if (decoded > frames) {
			const gap = at - lastNewFrameAt;
			if (gap > 500) frozenMs += gap;
			lastNewFrameAt = at;
			frames = decoded;
		}
	}
	if (last[0] - lastNewFrameAt > 500) frozenMs += last[0] - lastNewFrameAt;
	const received = last[4] - first[4];
	const lost = last[5] - first[5];
	return {
		fps: ((last[1] - first[1]) * 1000) / (last[0] - first[0]),
		frozenMs,
		sizes: window.filter(([, , w]) => w > 0).map(([, , w, h]) => `${w}x${h}`),
		lossPercent: received + lost > 0 ? (lost / (received + lost)) * 100 : 0,
	};
}

async function samplesOf(page: import('playwright-core').Page): Promise<Sample[]> {
	return page.evaluate(() => window.abrSamples);
}

/**
 * Runs in the page: a receive-only peer connection joined through `joinRelay`,
 * and its inbound video sampled every 100 ms (wall-clock ms, frames decoded,
 * size, packets received and lost).
 */
const WATCH_IN_PAGE = async (rateKbps: number): Promise<void> => {
	const pc = new RTCPeerConnection();
	pc.addTransceiver('video', { direction: 'recvonly' });
	await pc.setLocalDescription(await pc.createOffer());
	await pc.setRemoteDescription({ type: 'answer', sdp: await window.joinRelay(pc.localDescription!.sdp, rateKbps) });
	const samples: Sample[] = [];
	window.abrSamples = samples;
	setInterval(async () => {
		// `performance` is the page's: wall-clock ms, comparable across pages.
		const stats = await pc.getStats();
		for (const s of stats.values()) {
			if (s.type === 'inbound-rtp' && s.kind === 'video') {
				samples.push([performance.timeOrigin + performance.now(), s.framesDecoded ?? 0, s.frameWidth ?? 0, s.frameHeight ?? 0, s.packetsReceived ?? 0, s.packetsLost ?? 0]);
				if (samples.length > 20_000) samples.shift();
			}
		}
	}, 100);
};

function mostCommon(values: string[]): string | undefined {
	const counts = new Map<string, number>();
	for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
	return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

function round(value: number, digits: number): number {
	const f = 10 ** digits;
	return Math.round(value * f) / f;
}

async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
	const deadline = performance.now() + timeoutMs;
	while (!predicate()) {
		if (performance.now() > deadline) throw new Error(`ABR scenario: timed out after ${timeoutMs} ms waiting for ${what}`);
		await sleep(50);
	}
}
