/**
 * The benchmark's scenario names, apart from the bench itself so the CLI can
 * list them without loading the harness (which needs werift, a dev dependency).
 */
export const SCENARIOS = ['steady', 'churn', 'pli-storm', 'lossy', 'ffmpeg-kill', 'worker-kill'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
