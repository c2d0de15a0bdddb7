/**
 * The benchmark's scenario and engine names, apart from the bench itself so the CLI can
 * list them without loading the harness (which needs werift, a dev dependency).
 */
export const SCENARIOS = ['steady', 'churn', 'pli-storm', 'lossy', 'ffmpeg-kill', 'worker-kill', 'cpu-starved'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Re-encoder engines the bench compares (the broadcast option `engine`). */
export const ENGINES = ['libav', 'ffmpeg'] as const;
export type EngineName = (typeof ENGINES)[number];
