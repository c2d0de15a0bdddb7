import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchReport, Mode, ScenarioResult } from './bench.js';

const fmt = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

function ratio(relay: number, baseline: number): string {
	if (!Number.isFinite(relay) || !Number.isFinite(baseline)) return 'n/a';
	if (relay === 0 && baseline === 0) return '=';
	if (relay === 0) return `∞ fewer (${fmt(baseline, 0)} → 0)`;
	return `×${fmt(baseline / relay, 1)}`;
}

const ROWS: Array<{ label: string; value: (r: ScenarioResult) => number; digits?: number; ratio?: boolean }> = [
	{ label: 'keyframe requests reaching the broadcaster / min', value: (r) => r.keyframeRequestsPerMinute, ratio: true },
	{ label: 'broadcaster upstream kbit/s', value: (r) => r.broadcasterBitrateKbps, digits: 0 },
	{ label: 'broadcaster bitrate / steady state', value: (r) => r.broadcasterBitrateRatio, digits: 2 },
	{ label: 'time to first frame p50 (ms)', value: (r) => r.timeToFirstFrameMs.p50, digits: 0 },
	{ label: 'time to first frame p95 (ms)', value: (r) => r.timeToFirstFrameMs.p95, digits: 0 },
	{ label: 'end-to-end latency p50 (ms)', value: (r) => r.endToEndLatencyMs.p50, digits: 0 },
	{ label: 'end-to-end latency p95 (ms)', value: (r) => r.endToEndLatencyMs.p95, digits: 0 },
	{ label: 'frames per werift viewer', value: (r) => r.framesPerWeriftViewer, digits: 0 },
	{ label: 'sink viewer loss (%)', value: (r) => r.sinkLossPercent, digits: 2 },
	{ label: 'worker CPU (cores)', value: (r) => r.workerCpuCores, digits: 2 },
	{ label: 'worker CPU per 100 viewers (cores)', value: (r) => r.workerCpuPer100Viewers, digits: 3 },
	{ label: 'worker memory (MiB)', value: (r) => r.workerMemoryMiB, digits: 0 },
	{ label: 're-encoder CPU (cores, across restarts)', value: (r) => r.reencoderCpuCores, digits: 2 },
	{ label: 're-encoder FFmpeg restarts', value: (r) => r.reencoder?.restarts ?? Number.NaN, digits: 0 },
	{ label: 're-encoder running at the end (1 = yes)', value: (r) => (r.reencoder ? (r.reencoder.runningAtEnd ? 1 : 0) : Number.NaN), digits: 0 },
	{ label: 're-encoder fps at the end', value: (r) => r.reencoder?.fpsAtEnd ?? Number.NaN, digits: 0 },
];

export function markdownReport(report: BenchReport): string {
	const lines: string[] = [];
	lines.push(`Benchmark of ${report.date.slice(0, 10)} on ${report.machine.cpus} × ${report.machine.model}, Node ${report.machine.node}.`);
	const o = report.options;
	lines.push(
		`${o.durationSeconds} s per scenario and mode; ${o.sinkViewers} SRTP sink viewers and ${o.weriftViewers} werift viewers; broadcaster ${o.video.width}x${o.video.height}@${o.video.fps} ${o.video.codec}${o.audio ? ' + Opus' : ''} ${o.video.bitrateKbps} kbit/s answering every keyframe request, re-encoded to VP8 at the same size; re-encoder keyframe every ${o.keyframeIntervalSeconds} s.`,
		'',
	);
	for (const scenario of [...new Set(report.scenarios.map((r) => r.scenario))]) {
		const relay = report.scenarios.find((r) => r.scenario === scenario && r.mode === 'relay');
		const baseline = report.scenarios.find((r) => r.scenario === scenario && r.mode === 'baseline');
		if (!relay || !baseline) continue;
		lines.push(`### ${scenario}`, '', '| measure | relay | baseline | baseline ÷ relay |', '|---|---:|---:|---:|');
		for (const row of ROWS) {
			const a = row.value(relay);
			const b = row.value(baseline);
			lines.push(`| ${row.label} | ${fmt(a, row.digits)} | ${fmt(b, row.digits)} | ${row.ratio ? ratio(a, b) : Number.isFinite(a) && Number.isFinite(b) && a !== 0 ? `×${fmt(b / a, 2)}` : 'n/a'} |`);
		}
		const relayLatency = relay.endToEndLatencyMs;
		const baseLatency = baseline.endToEndLatencyMs;
		lines.push(`| re-encoder added latency p50 / p95 (ms) | ${fmt(relayLatency.p50 - baseLatency.p50, 0)} / ${fmt(relayLatency.p95 - baseLatency.p95, 0)} | | |`);
		const events = [...relay.events.map((e) => `relay: ${e}`), ...baseline.events.map((e) => `baseline: ${e}`)];
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
	return lines.join('\n');
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
