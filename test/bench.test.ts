import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultBenchOptions, runBench, SCENARIOS } from '../src/harness/bench.js';
import { markdownReport, writeReport } from '../src/harness/report.js';
import { ffmpegChildren } from './helpers/fixture.js';

describe('benchmark harness (smoke run)', () => {
	it('runs every scenario in both modes, writes the report, and leaves nothing running', { timeout: 240_000 }, async () => {
		const report = await runBench(defaultBenchOptions(true));
		const dir = mkdtempSync(join(tmpdir(), 'bench-'));
		try {
			const paths = writeReport(report, dir);
			expect(existsSync(paths.json) && existsSync(paths.markdown) && existsSync(paths.svg)).toBe(true);
			expect(readFileSync(paths.svg, 'utf8')).toMatch(/^<svg/);
			const markdown = readFileSync(paths.markdown, 'utf8');
			for (const scenario of SCENARIOS) expect(markdown).toContain(`### ${scenario}`);
			console.log(markdown);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}

		expect(report.scenarios).toHaveLength(SCENARIOS.length * 2);
		for (const result of report.scenarios) {
			// Every run delivered video to its viewers.
			expect(result.sinkPacketsPerViewer).toBeGreaterThan(0);
			expect(result.framesPerWeriftViewer).toBeGreaterThan(0);
			expect(Number.isFinite(result.broadcasterBitrateKbps)).toBe(true);
		}
		const storm = (mode: string) => report.scenarios.find((r) => r.scenario === 'pli-storm' && r.mode === mode)!;
		// The point of the relay, even in a 3-second run: the storm stops at the re-encoder.
		expect(storm('relay').keyframeRequestsToBroadcaster).toBeLessThan(storm('baseline').keyframeRequestsToBroadcaster);
		expect(storm('relay').endToEndLatencyMs.samples).toBeGreaterThan(0);
		const killed = report.scenarios.find((r) => r.scenario === 'ffmpeg-kill' && r.mode === 'relay')!;
		expect(killed.events.join()).toMatch(/killed the re-encoder/);
		// The report follows the re-encoder across its restart: CPU of both FFmpeg processes, never negative; the restart counted.
		expect(killed.reencoder!.restarts).toBeGreaterThanOrEqual(1);
		expect(killed.reencoder!.processes).toBeGreaterThanOrEqual(2);
		expect(killed.events.join()).toMatch(/re-encoder FFmpeg restarted/);
		expect(markdownReport(report)).toMatch(/re-encoder FFmpeg restarts/);
		for (const result of report.scenarios) {
			expect(result.reencoderCpuCores, `${result.scenario} ${result.mode}`).toBeGreaterThanOrEqual(0);
			expect(result.workerCpuCores, `${result.scenario} ${result.mode}`).toBeGreaterThanOrEqual(0);
			if (result.mode === 'relay') expect(result.reencoder, result.scenario).toBeDefined();
			else expect(result.reencoder, result.scenario).toBeUndefined();
		}
		expect(report.scenarios.find((r) => r.scenario === 'worker-kill' && r.mode === 'relay')!.events.join()).toMatch(/viewers reported lost/);
		expect(report.saturation.map((s) => s.mode)).toEqual(['relay', 'baseline']);
		for (const ramp of report.saturation) expect(ramp.steps.length).toBeGreaterThan(0);
		expect(ffmpegChildren()).toEqual([]);
	});
});
