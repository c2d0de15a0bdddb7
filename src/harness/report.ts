import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchReport, Mode, ScenarioResult } from './bench.js';
import type { EngineName, ScenarioName } from './scenarios.js';

const fmt = (value: number, digits = 1): string => {
	if (!Number.isFinite(value)) return 'n/a';
	const text = value.toFixed(digits);
	return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text; // -0.2 rounds to "-0": print "0"
};

/** A figure the run does not have (the ffmpeg engine reports no health, no on-demand keyframes; baseline has no re-encoder). */
const MISSING = '–';

/** Baseline over relay where fewer is the point (keyframe requests): "×4.0", "∞ fewer (12 → 0)". */
function fewer(relay: number, baseline: number): string {
	if (!Number.isFinite(relay) || !Number.isFinite(baseline)) return 'n/a';
	if (relay === 0 && baseline === 0) return '=';
	if (relay === 0) return `∞ fewer (${fmt(baseline, 0)} → 0)`;
	return `×${fmt(baseline / relay, 1)}`;
}

/** a ÷ b, or "–" / "n/a" when either is missing. */
function times(a: number | undefined, b: number | undefined): string {
	if (a === undefined || b === undefined) return MISSING;
	if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return a === 0 && b === 0 ? '=' : 'n/a';
	return `×${fmt(a / b, 2)}`;
}

const health = (h: { state: string; reason?: string } | undefined): string => (h ? `${h.state}${h.reason ? ` (${h.reason})` : ''}` : MISSING);

interface Row {
	label: string;
	/** The figure; undefined: the run has none ("–"). */
	value?: (r: ScenarioResult) => number | undefined;
	/** A figure in words (health). */
	text?: (r: ScenarioResult) => string;
	digits?: number;
	/** How relay compares with baseline: "fewer" (requests), "times" (baseline ÷ relay), none. */
	versusBaseline?: 'fewer' | 'times';
	/** Only in these scenarios. */
	only?: ScenarioName[];
	/** No engine ÷ engine ratio (figures that can be 0 or negative: offsets, differences). */
	noEngineRatio?: true;
}

const ROWS: Row[] = [
	{ label: 'keyframe requests reaching the broadcaster / min', value: (r) => r.keyframeRequestsPerMinute, versusBaseline: 'fewer' },
	{ label: 'upstream keyframe requests / min (engine stats)', value: (r) => r.reencoder?.upstreamKeyframeRequestsPerMinute },
	{ label: 'broadcaster upstream kbit/s', value: (r) => r.broadcasterBitrateKbps, digits: 0, versusBaseline: 'times' },
	{ label: 'broadcaster bitrate / steady state', value: (r) => r.broadcasterBitrateRatio, digits: 2, versusBaseline: 'times' },
	{ label: 'time to first frame p50 (ms)', value: (r) => r.timeToFirstFrameMs.p50, digits: 0, versusBaseline: 'times' },
	{ label: 'time to first frame p95 (ms)', value: (r) => r.timeToFirstFrameMs.p95, digits: 0, versusBaseline: 'times' },
	{ label: 'end-to-end latency p50 (ms)', value: (r) => r.endToEndLatencyMs.p50, digits: 0, versusBaseline: 'times' },
	{ label: 'end-to-end latency p95 (ms)', value: (r) => r.endToEndLatencyMs.p95, digits: 0, versusBaseline: 'times' },
	{ label: 'added latency p50 (ms, relay − baseline)', value: (r) => r.addedLatencyMs?.p50, digits: 0, noEngineRatio: true },
	{ label: 'added latency p95 (ms, relay − baseline)', value: (r) => r.addedLatencyMs?.p95, digits: 0, noEngineRatio: true },
	{ label: 'latency to a werift viewer p50 (ms, RTP arrival)', value: (r) => r.latencyAtViewerMs.p50, digits: 0, versusBaseline: 'times' },
	{ label: 'latency to a werift viewer p95 (ms, RTP arrival)', value: (r) => r.latencyAtViewerMs.p95, digits: 0, versusBaseline: 'times' },
	{ label: 'added latency at a werift viewer p50 / p95 (ms)', text: (r) => (r.addedLatencyAtViewerMs ? `${fmt(r.addedLatencyAtViewerMs.p50, 0)} / ${fmt(r.addedLatencyAtViewerMs.p95, 0)}` : MISSING) },
	{ label: 'A/V offset p50 (ms, audio − video)', value: (r) => r.avOffsetMs.p50, digits: 0, noEngineRatio: true },
	{ label: 'A/V offset p5 / p95 (ms)', text: (r) => (r.avOffsetMs.samples ? `${fmt(r.avOffsetMs.p5, 0)} / ${fmt(r.avOffsetMs.p95, 0)}` : 'n/a') },
	{ label: 'A/V offset samples', value: (r) => r.avOffsetMs.samples, digits: 0, noEngineRatio: true },
	{ label: 'keyframes at a viewer / min', value: (r) => r.viewerKeyframesPerMinute, digits: 0, versusBaseline: 'times' },
	{ label: 'keyframes made / min (engine stats)', value: (r) => r.reencoder?.keyframesPerMinute, digits: 0 },
	{ label: 'keyframes made on demand / min (engine stats)', value: (r) => r.reencoder?.keyframesOnDemandPerMinute, digits: 0 },
	{ label: 'keyframe requests reaching the engine / min (engine stats)', value: (r) => r.reencoder?.keyframeRequestsReceivedPerMinute, digits: 0 },
	{ label: 'video bitrate at a sink viewer (kbit/s)', value: (r) => r.viewerVideoKbps, digits: 0, versusBaseline: 'times' },
	{ label: 'video bitrate at a sink viewer / steady scenario', value: (r) => r.viewerBitrateVsSteady, digits: 2 },
	{ label: 'frames per werift viewer', value: (r) => r.framesPerWeriftViewer, digits: 0, versusBaseline: 'times' },
	{ label: 'sink viewer loss (%)', value: (r) => r.sinkLossPercent, digits: 2, noEngineRatio: true },
	{ label: 'worker CPU (cores)', value: (r) => r.workerCpuCores, digits: 2, versusBaseline: 'times' },
	{ label: 'worker CPU per 100 viewers (cores)', value: (r) => r.workerCpuPer100Viewers, digits: 3, versusBaseline: 'times' },
	{ label: 'worker memory (MiB)', value: (r) => r.workerMemoryMiB, digits: 0, versusBaseline: 'times' },
	{ label: 're-encoder CPU (cores, across restarts)', value: (r) => (r.mode === 'relay' ? r.reencoderCpuCores : undefined), digits: 2 },
	{ label: 're-encoder restarts', value: (r) => r.reencoder?.restarts, digits: 0 },
	{ label: 're-encoder running at the end (1 = yes)', value: (r) => (r.reencoder ? (r.reencoder.runningAtEnd ? 1 : 0) : undefined), digits: 0, noEngineRatio: true },
	{ label: 're-encoder fps at the end', value: (r) => r.reencoder?.fpsAtEnd, digits: 0 },
	{ label: 're-encoder health at the end / worst seen', text: (r) => (r.reencoder ? `${health(r.reencoder.healthAtEnd)} / ${health(r.reencoder.worstHealth)}` : MISSING) },
	{ label: 'CPU pressure applied (1 = yes)', value: (r) => (r.starvation ? (r.starvation.pressure ? 1 : 0) : undefined), digits: 0, only: ['cpu-starved'], noEngineRatio: true },
	{ label: 'decodable fps at a viewer before the pressure', value: (r) => r.starvation?.decodableFpsBefore, only: ['cpu-starved'] },
	{ label: 'decodable fps at a viewer under pressure', value: (r) => r.starvation?.decodableFpsUnderPressure, only: ['cpu-starved'] },
	{ label: 'lowest decodable fps in a 1 s window under pressure', value: (r) => r.starvation?.minDecodableFps1s, only: ['cpu-starved'] },
	{ label: 'longest keyframe gap at a viewer under pressure (ms)', value: (r) => r.starvation?.maxKeyframeGapMs, digits: 0, only: ['cpu-starved'] },
	{ label: 'time to full rate after the pressure (ms)', value: (r) => r.starvation?.timeToFullRateMs, digits: 0, only: ['cpu-starved'], noEngineRatio: true },
	{ label: 're-encoder fps under pressure (its stats)', value: (r) => (r.starvation?.pressure ? r.starvation.reencoderFpsUnderPressure : undefined), only: ['cpu-starved'] },
	{ label: 'health under pressure (worst)', text: (r) => (r.starvation?.pressure ? health(r.starvation.healthUnderPressure) : MISSING), only: ['cpu-starved'] },
];

function cell(row: Row, result: ScenarioResult | undefined): string {
	if (!result) return MISSING;
	if (row.text) return row.text(result);
	const value = row.value!(result);
	return value === undefined ? MISSING : fmt(value, row.digits);
}

function versusBaseline(row: Row, relay: ScenarioResult | undefined, baseline: ScenarioResult | undefined): string {
	if (!row.versusBaseline || !relay || !baseline || !row.value) return '';
	const a = row.value(relay);
	const b = row.value(baseline);
	if (a === undefined || b === undefined) return MISSING;
	return row.versusBaseline === 'fewer' ? fewer(a, b) : times(b, a);
}

/**
 * One table per scenario: baseline, then per engine its figures and baseline ÷ that engine,
 * then the first engine ÷ the second (libav ÷ ffmpeg by default). "–": the run has no such
 * figure (the ffmpeg engine reports no health; baseline has no re-encoder); "n/a": measured, no sample.
 */
export function markdownReport(report: BenchReport): string {
	const lines: string[] = [];
	lines.push(`Benchmark of ${report.date.slice(0, 10)} on ${report.machine.cpus} × ${report.machine.model}, Node ${report.machine.node}.`);
	const o = report.options;
	const s = o.starvation;
	lines.push(
		`${o.durationSeconds} s per scenario and run (cpu-starved: ${s.beforeSeconds} s, then ${s.busySeconds} s with a busy loop on the re-encoder's core, then ${s.afterSeconds} s); ${o.sinkViewers} SRTP sink viewers, ${o.weriftViewers} werift viewers and one measuring werift viewer (audio and video, whole run); broadcaster ${o.video.width}x${o.video.height}@${o.video.fps} ${o.video.codec}${o.audio ? ' + Opus with a click every second' : ''} ${o.video.bitrateKbps} kbit/s answering every keyframe request, re-encoded to VP8 at the same size; re-encoder keyframe every ${o.keyframeIntervalSeconds} s; engines ${o.engines.join(', ')}.`,
		'',
	);
	const engines = o.engines;
	const scenarioNames = [...new Set([...report.scenarios.map((r) => r.scenario), ...report.failed.map((f) => f.scenario)])];
	for (const scenario of scenarioNames) {
		const baseline = report.scenarios.find((r) => r.scenario === scenario && r.mode === 'baseline');
		const relay = (engine: EngineName) => report.scenarios.find((r) => r.scenario === scenario && r.mode === 'relay' && r.engine === engine);
		const header = ['measure', 'baseline', ...engines.flatMap((e) => [e, `baseline ÷ ${e}`])];
		const compare = engines.length >= 2 ? [engines[0]!, engines[1]!] : undefined;
		if (compare) header.push(`${compare[0]} ÷ ${compare[1]}`);
		lines.push(`### ${scenario}`, '', `| ${header.join(' | ')} |`, `|---|${header.slice(1).map(() => '---:').join('|')}|`);
		for (const row of ROWS) {
			if (row.only && !row.only.includes(scenario)) continue;
			const cells = [row.label, cell(row, baseline)];
			for (const engine of engines) cells.push(cell(row, relay(engine)), versusBaseline(row, relay(engine), baseline));
			if (compare) {
				const [a, b] = compare.map(relay);
				cells.push(!row.value || row.noEngineRatio ? '' : a && b ? times(row.value(a), row.value(b)) : MISSING);
			}
			lines.push(`| ${cells.join(' | ')} |`);
		}
		const events = [
			...(baseline?.events.map((e) => `baseline: ${e}`) ?? []),
			...engines.flatMap((engine) => relay(engine)?.events.map((e) => `relay (${engine}): ${e}`) ?? []),
			...report.failed.filter((f) => f.scenario === scenario).map((f) => `${f.mode}${f.engine ? ` (${f.engine})` : ''}: FAILED: ${f.error}`),
		];
		if (events.length) lines.push('', ...events.map((e) => `- ${e}`));
		lines.push('');
	}
	if (report.saturation.length) {
		lines.push('### saturation (one worker)', '', '| mode | consumers at saturation | limited by | steps (consumers: loss %, CPU %) |', '|---|---:|---|---|');
		for (const s of report.saturation) {
			lines.push(`| ${s.mode} | ${s.consumersAtSaturation} | ${s.limitedBy} | ${s.steps.map((x) => `${x.consumers}: ${fmt(x.lossPercent, 2)}, ${fmt(x.workerCpuPercent, 0)}`).join('; ')} |`);
		}
		lines.push('');
	}
	if (report.abr) lines.push(...abrMarkdown(report.abr));
	return lines.join('\n');
}

/** The ABR scenario: per viewer class, ladder against a single rendition; switch time and re-encoder CPU. */
function abrMarkdown(abr: NonNullable<BenchReport['abr']>): string[] {
	const lines = ['### abr (Chromium viewers at mixed link capacities)', ''];
	if (abr.skipped) return [...lines, `Not run: ${abr.skipped}.`, ''];
	lines.push('| run | viewer link | viewers | picture (layer) | fps | freeze % | loss % |', '|---|---|---:|---|---:|---:|---:|');
	for (const run of abr.runs) {
		for (const c of run.classes) {
			lines.push(`| ${run.run} (${run.layers} layer${run.layers > 1 ? 's' : ''}) | ${c.label} | ${c.viewers} | ${c.size}${c.layer !== null ? ` (${c.layer})` : ''} | ${fmt(c.fps)} | ${fmt(c.freezePercent, 2)} | ${fmt(c.lossPercent, 2)} |`);
		}
	}
	const ladder = abr.runs.find((r) => r.run === 'ladder');
	const single = abr.runs.find((r) => r.run === 'single');
	lines.push('');
	if (ladder?.layerSwitchMs) lines.push(`- Layer switch at a viewer (its maximum layer set to 0, then lifted): down ${fmt(ladder.layerSwitchMs.down, 0)} ms, up ${fmt(ladder.layerSwitchMs.up, 0)} ms.`);
	if (ladder && single) {
		lines.push(`- Re-encoder CPU: ladder ${fmt(ladder.reencoderCpuCores, 2)} core, single rendition ${fmt(single.reencoderCpuCores, 2)} core (×${fmt(ladder.reencoderCpuCores / Math.max(0.001, single.reencoderCpuCores), 2)}).`);
		lines.push(`- Relay-side layer switches while measured: ladder ${ladder.switches}.`);
	}
	lines.push('');
	return lines;
}

/** Viewers (consumers on one worker) against worker CPU and loss, both modes, as an SVG line chart. */
export function saturationSvg(report: BenchReport): string {
	const width = 640;
	const height = 320;
	const pad = { left: 50, right: 50, top: 30, bottom: 40 };
	const maxX = Math.max(1, ...report.saturation.flatMap((s) => s.steps.map((x) => x.consumers)));
	const maxLoss = Math.max(1, ...report.saturation.flatMap((s) => s.steps.map((x) => x.lossPercent)));
	const x = (v: number) => pad.left + (v / maxX) * (width - pad.left - pad.right);
	const yCpu = (v: number) => height - pad.bottom - (Math.min(v, 100) / 100) * (height - pad.top - pad.bottom);
	const yLoss = (v: number) => height - pad.bottom - (v / maxLoss) * (height - pad.top - pad.bottom);
	const colors: Record<Mode, string> = { relay: '#1f77b4', baseline: '#d62728' };
	const parts: string[] = [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
		`<rect width="100%" height="100%" fill="white"/>`,
		`<text x="${width / 2}" y="16" text-anchor="middle" font-size="13">consumers on one worker vs worker CPU (solid) and loss (dashed)</text>`,
		`<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#333"/>`,
		`<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${height - pad.bottom}" stroke="#333"/>`,
		`<line x1="${width - pad.right}" y1="${pad.top}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#333"/>`,
		`<text x="${width / 2}" y="${height - 8}" text-anchor="middle">consumers</text>`,
		`<text x="12" y="${height / 2}" transform="rotate(-90 12 ${height / 2})" text-anchor="middle">CPU %</text>`,
		`<text x="${width - 12}" y="${height / 2}" transform="rotate(90 ${width - 12} ${height / 2})" text-anchor="middle">loss %</text>`,
	];
	for (let i = 0; i <= 4; i++) {
		const v = (maxX * i) / 4;
		parts.push(`<text x="${x(v)}" y="${height - pad.bottom + 14}" text-anchor="middle">${Math.round(v)}</text>`);
		parts.push(`<text x="${pad.left - 6}" y="${yCpu(i * 25) + 4}" text-anchor="end">${i * 25}</text>`);
		parts.push(`<text x="${width - pad.right + 6}" y="${yLoss((maxLoss * i) / 4) + 4}">${fmt((maxLoss * i) / 4, 2)}</text>`);
	}
	report.saturation.forEach((s, i) => {
		const cpu = s.steps.map((p) => `${x(p.consumers)},${yCpu(p.workerCpuPercent)}`).join(' ');
		const loss = s.steps.map((p) => `${x(p.consumers)},${yLoss(p.lossPercent)}`).join(' ');
		parts.push(`<polyline fill="none" stroke="${colors[s.mode]}" stroke-width="2" points="${cpu}"/>`);
		parts.push(`<polyline fill="none" stroke="${colors[s.mode]}" stroke-width="2" stroke-dasharray="5,4" points="${loss}"/>`);
		parts.push(`<text x="${pad.left + 10}" y="${pad.top + 14 + i * 14}" fill="${colors[s.mode]}">${s.mode}: ${s.consumersAtSaturation} consumers (${s.limitedBy})</text>`);
	});
	parts.push('</svg>');
	return parts.join('\n');
}

/** Writes report.json, report.md and saturation.svg into `dir`; returns their paths. */
export function writeReport(report: BenchReport, dir: string): { json: string; markdown: string; svg: string } {
	mkdirSync(dir, { recursive: true });
	const paths = { json: join(dir, 'report.json'), markdown: join(dir, 'report.md'), svg: join(dir, 'saturation.svg') };
	writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`);
	writeFileSync(paths.markdown, `${markdownReport(report)}\n`);
	writeFileSync(paths.svg, `${saturationSvg(report)}\n`);
	return paths;
}

/** A one-line progress bar on stderr (only when stderr is a terminal, or when forced). */
export function progressBar(force = false): (p: { label: string; done: number; total: number }) => void {
	const tty = process.stderr.isTTY || force;
	let last = '';
	return ({ label, done, total }) => {
		const share = Math.max(0, Math.min(1, total ? done / total : 0));
		const bar = `[${'#'.repeat(Math.round(share * 30)).padEnd(30, '.')}] ${label} ${Math.round(share * 100)}%`;
		if (bar === last) return;
		last = bar;
		if (tty) process.stderr.write(`\r${bar.padEnd(80)}`);
	};
}
