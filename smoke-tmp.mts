import { runBench, defaultBenchOptions } from '/work/main/src/harness/bench.js';
import { markdownReport } from '/work/main/src/harness/report.js';
const report = await runBench({ ...defaultBenchOptions(true), scenarios: ['steady', 'pli-storm'], saturation: undefined });
console.log(markdownReport(report));
