/**
 * Consumers placed per worker slot, shared by every broadcast of a relay, so
 * the per-worker budget holds across broadcasts.
 */
export class WorkerLoad {
	readonly #consumers: number[];

	constructor(slots: number) {
		this.#consumers = new Array<number>(slots).fill(0);
	}

	consumers(slot: number): number {
		return this.#consumers[slot] ?? 0;
	}

	add(slot: number, count: number): void {
		this.#consumers[slot] = Math.max(0, (this.#consumers[slot] ?? 0) + count);
	}

	/** Forgets a slot's load after its worker died: what was placed there is gone. */
	reset(slot: number): void {
		this.#consumers[slot] = 0;
	}

	snapshot(): number[] {
		return [...this.#consumers];
	}
}
