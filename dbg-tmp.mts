import { runBench, defaultBenchOptions } from '/work/main/src/harness/bench.js';
const report = await runBench({ ...defaultBenchOptions(true), scenarios: ['steady'], saturation: undefined });
for (const r of report.scenarios) console.log(r.mode, JSON.stringify(r.endToEndLatencyMs));
