/**
 * When the engine's next picture must be a keyframe: the first one, the fixed
 * interval, and viewers' requests coalesced to at most one on-demand keyframe
 * per `minKeyframeIntervalMs` (a PLI storm from hundreds of viewers makes a few
 * keyframes, not hundreds; each costs several frames' worth of bits). Only
 * on-demand keyframes hold a request back: a viewer joining just after an
 * interval keyframe (which it missed) is served at once. The interval counts
 * from the last keyframe of either kind, so during a storm the interval never
 * adds one: at most 1000 / minKeyframeIntervalMs keyframes a second in all.
 */
export class KeyframePolicy {
	readonly #intervalMs: number;
	readonly #minIntervalMs: number;
	#lastKeyframeAt = Number.NEGATIVE_INFINITY;
	#lastOnDemandAt = Number.NEGATIVE_INFINITY;
	#requested = false;
	#requestsReceived = 0;
	#onDemand = 0;
	#made = 0;

	/** `earlyMs`: how early the fixed interval may fire, so it lands on the nearest picture (half a frame interval), not the next. */
	constructor(options: { intervalMs: number; minIntervalMs: number; earlyMs?: number }) {
		this.#intervalMs = options.intervalMs - (options.earlyMs ?? 0);
		this.#minIntervalMs = options.minIntervalMs;
	}

	/** A viewer (through mediasoup) asked for a keyframe. */
	request(): void {
		this.#requestsReceived += 1;
		this.#requested = true;
	}

	/** Whether the picture about to be encoded at `now` must be a keyframe. */
	due(now: number): boolean {
		if (now - this.#lastKeyframeAt >= this.#intervalMs) return true;
		return this.#requested && now - this.#lastOnDemandAt >= this.#minIntervalMs;
	}

	/** When a pending request may next be served (for a timer), or undefined if none is pending. */
	pendingAt(): number | undefined {
		return this.#requested ? this.#lastOnDemandAt + this.#minIntervalMs : undefined;
	}

	/** A keyframe left at `now`; `forced` when due() asked for it (not the encoder's own, e.g. after a resize). */
	made(now: number): void {
		const onDemand = this.#requested && now - this.#lastKeyframeAt < this.#intervalMs;
		if (onDemand) {
			this.#onDemand += 1;
			this.#lastOnDemandAt = now;
		}
		this.#made += 1;
		this.#requested = false;
		this.#lastKeyframeAt = now;
	}

	get lastKeyframeAt(): number {
		return this.#lastKeyframeAt;
	}

	get counts(): { made: number; onDemand: number; requestsReceived: number } {
		return { made: this.#made, onDemand: this.#onDemand, requestsReceived: this.#requestsReceived };
	}
}
