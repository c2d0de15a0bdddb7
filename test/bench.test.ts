import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultBenchOptions, ENGINES, runBench, SCENARIOS, type EngineName } from '../src/harness/bench.js';
import { hasTaskset } from '../src/harness/cpuPressure.js';
import { markdownReport, writeReport } from '../src/harness/report.js';
import { mediaChildren } from './helpers/fixture.js';

/** Engines the smoke run compares: both by default; BENCH_ENGINES=ffmpeg (comma-separated) narrows it while one is broken. */
function smokeEngines(): EngineName[] {
	const wanted = process.env.BENCH_ENGINES?.split(',').map((e) => e.trim()).filter(Boolean);
	if (!wanted?.length) return [...ENGINES];
	for (const engine of wanted) if (!(ENGINES as readonly string[]).includes(engine)) throw new Error(`BENCH_ENGINES: unknown engine ${engine}; pick from ${ENGINES.join(', ')}`);
	return wanted as EngineName[];
}

const cpusAllowed = (): string => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';

describe('benchmark harness (smoke run)', () => {
	it('runs every scenario in baseline and once per engine, writes the report, gives the process its cores back, and leaves nothing running', { timeout: 240_000 }, async () => {
		const engines = smokeEngines();
		const coresBefore = cpusAllowed();
		const report = await runBench({ ...defaultBenchOptions(true), engines });
		const dir = mkdtempSync(join(tmpdir(), 'bench-'));
		try {
			const paths = writeReport(report, dir);
			expect(existsSync(paths.json) && existsSync(paths.markdown) && existsSync(paths.svg)).toBe(true);
			expect(readFileSync(paths.svg, 'utf8')).toMatch(/^<svg/);
			const markdown = readFileSync(paths.markdown, 'utf8');
			for (const scenario of SCENARIOS) expect(markdown).toContain(`### ${scenario}`);
			// One column group per engine, and engine against engine when there are two.
			expect(markdown).toContain(`| measure | baseline | ${engines.map((e) => `${e} | baseline ÷ ${e}`).join(' | ')}${engines.length === 2 ? ` | ${engines[0]} ÷ ${engines[1]}` : ''} |`);
			console.log(markdown);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}

		expect(report.failed).toEqual([]);
		expect(report.scenarios).toHaveLength(SCENARIOS.length * (1 + engines.length));
		const run = (scenario: string, engine?: EngineName) =>
			report.scenarios.find((r) => r.scenario === scenario && (engine ? r.mode === 'relay' && r.engine === engine : r.mode === 'baseline'))!;
		for (const result of report.scenarios) {
			const name = `${result.scenario} ${result.mode} ${result.engine ?? ''}`;
			// Every run delivered video to its viewers.
			expect(result.sinkPacketsPerViewer, name).toBeGreaterThan(0);
			expect(result.framesPerWeriftViewer, name).toBeGreaterThan(0);
			expect(Number.isFinite(result.broadcasterBitrateKbps), name).toBe(true);
			expect(result.reencoderCpuCores, name).toBeGreaterThanOrEqual(0);
			expect(result.workerCpuCores, name).toBeGreaterThanOrEqual(0);
			if (result.mode === 'relay') {
				expect(result.reencoder, name).toBeDefined();
				expect(result.engine, name).toBeDefined();
				// The re-encoder makes a keyframe every second at least: the measuring viewer counts them.
				expect(result.viewerKeyframesPerMinute, name).toBeGreaterThan(0);
				// It reads the barcodes of the re-encoded frames it receives.
				expect(result.latencyAtViewerMs.samples, name).toBeGreaterThan(0);
			} else {
				expect(result.reencoder, name).toBeUndefined();
				expect(result.engine, name).toBeUndefined();
			}
		}
		for (const engine of engines) {
			// The point of the relay, even in a 3-second run: the storm stops at the re-encoder.
			expect(run('pli-storm', engine).keyframeRequestsToBroadcaster, engine).toBeLessThan(run('pli-storm').keyframeRequestsToBroadcaster);
			expect(run('pli-storm', engine).endToEndLatencyMs.samples, engine).toBeGreaterThan(0);
			expect(run('pli-storm', engine).viewerBitrateVsSteady, engine).toBeGreaterThan(0);
			expect(run('pli-storm', engine).addedLatencyMs, engine).toBeDefined();
			// The report follows the re-encoder across its restart: CPU of both processes, never negative; the restart counted.
			const killed = run('ffmpeg-kill', engine);
			expect(killed.events.join(), engine).toMatch(/killed the re-encoder process/);
			expect(killed.reencoder!.restarts, engine).toBeGreaterThanOrEqual(1);
			expect(killed.reencoder!.processes, engine).toBeGreaterThanOrEqual(2);
			expect(killed.events.join(), engine).toMatch(/re-encoder restarted/);
			expect(run('worker-kill', engine).events.join(), engine).toMatch(/viewers reported lost/);
			// Clicks heard and matched with their frames in every engine's runs (a few a run: one a second).
			const offsets = report.scenarios.filter((r) => r.engine === engine).reduce((sum, r) => sum + r.avOffsetMs.samples, 0);
			expect(offsets, engine).toBeGreaterThan(0);
			// CPU starvation: the busy loop ran on the re-encoder's core (given two cores and taskset) and viewers still got video.
			const starved = run('cpu-starved', engine).starvation!;
			expect(starved.pressure, engine).toBe(availableParallelism() >= 2 && hasTaskset());
			expect(starved.busySeconds, engine).toBeGreaterThan(0);
			expect(starved.decodableFpsUnderPressure, engine).toBeGreaterThan(0);
		}
		expect(run('cpu-starved').starvation!.pressure).toBe(false);
		expect(markdownReport(report)).toMatch(/re-encoder restarts/);
		expect(report.saturation.map((s) => s.mode)).toEqual(['relay', 'baseline']);
		for (const ramp of report.saturation) expect(ramp.steps.length).toBeGreaterThan(0);
		// The cpu-starved runs pinned this process to the other cores; it has them all back.
		expect(cpusAllowed()).toBe(coresBefore);
		expect(mediaChildren()).toEqual([]);
	});
});
