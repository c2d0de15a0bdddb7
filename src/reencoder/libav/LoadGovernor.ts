import type { EffortLevel } from './VideoTranscoder.js';

/** What the engine saw in one second of work. */
export interface SecondOfWork {
	/** Frames decoded but not encoded because newer ones were waiting. */
	skipped: number;
	/** Frames encoded. */
	encoded: number;
	/** 95th percentile of arrival-to-send, ms. */
	latencyP95: number;
}

/**
 * Sheds load in steps when the engine falls behind real time, and gives it back
 * when the pressure ends: skipping frames happens by itself (only the newest
 * waiting frame is encoded); this raises the encoder's effort level (0 normal,
 * 1 cheaper encoder settings, 2 half resolution) after a second of falling
 * behind, and lowers it one step after `calmSeconds` of keeping up. A step down
 * that proves too much (behind again within `RETRY_WINDOW_SECONDS`) doubles the calm
 * needed before the next try, up to `MAX_CALM_SECONDS`: a core that is still busy
 * would otherwise make it flap between levels, and every change reopens the encoder.
 */
const RETRY_WINDOW_SECONDS = 10;
const MAX_CALM_SECONDS = 30;

export class LoadGovernor {
	readonly #frameIntervalMs: number;
	readonly #initialCalmSeconds: number;
	#calmSeconds: number;
	#effort: EffortLevel = 0;
	#calm = 0;
	/** Seconds since the last step down (Infinity: none yet). */
	#sinceStepDown = Number.POSITIVE_INFINITY;

	constructor(options: { fps: number; calmSeconds?: number }) {
		this.#frameIntervalMs = 1000 / options.fps;
		this.#initialCalmSeconds = options.calmSeconds ?? 3;
		this.#calmSeconds = this.#initialCalmSeconds;
	}

	get effort(): EffortLevel {
		return this.#effort;
	}

	/** Feeds one second of figures; returns the effort level to use from now on. */
	second(work: SecondOfWork): EffortLevel {
		const skipping = work.skipped > Math.max(1, (work.encoded + work.skipped) * 0.1);
		// Skipping alone is no sign of CPU pressure: a burst of frames after an input stall is decoded
		// and only its newest encoded, at once. Falling behind shows as latency.
		const behind = work.latencyP95 > 4 * this.#frameIntervalMs || (skipping && work.latencyP95 > 2 * this.#frameIntervalMs);
		const keepingUp = !skipping && work.latencyP95 < 2 * this.#frameIntervalMs;
		this.#sinceStepDown += 1;
		if (behind) {
			this.#calm = 0;
			if (this.#effort < 2) {
				this.#effort = (this.#effort + 1) as EffortLevel;
				if (this.#sinceStepDown <= RETRY_WINDOW_SECONDS) this.#calmSeconds = Math.min(MAX_CALM_SECONDS, this.#calmSeconds * 2);
			}
		} else if (keepingUp) {
			this.#calm += 1;
			if (this.#calm >= this.#calmSeconds && this.#effort > 0) {
				this.#effort = (this.#effort - 1) as EffortLevel;
				this.#calm = 0;
				this.#sinceStepDown = 0;
			}
			// Long calm at full effort: the pressure is over; start from the short hold again.
			if (this.#effort === 0 && this.#calm >= MAX_CALM_SECONDS) this.#calmSeconds = this.#initialCalmSeconds;
		} else {
			this.#calm = 0;
		}
		return this.#effort;
	}
}
