export { runBench, defaultBenchOptions, percentiles, SCENARIOS, ENGINES, type BenchOptions, type BenchReport, type EngineName, type ScenarioName, type ScenarioResult } from './bench.js';
export { AvOffsetProbe, ClickDetector, clickOnsets } from './AvOffsetProbe.js';
export { markdownReport, saturationSvg, writeReport, progressBar } from './report.js';
export { SyntheticBroadcaster, whipExchange, type OfferExchange } from './SyntheticBroadcaster.js';
export { WeriftViewer, type WeriftViewerOptions } from './WeriftViewer.js';
export { RtpSink, type SinkStream } from './RtpSink.js';
export { LatencyProbe } from './LatencyProbe.js';
export { LossyProxy, seededRandom, type Impairment } from './LossyProxy.js';
export { ensureClip, ensureOpusClip, ensureClickClip, type ClipSpec } from './fixtures.js';
