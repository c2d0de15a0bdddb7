import { cpus } from 'node:os';

interface Sample {
	at: number;
	idle: number;
	total: number;
}

function sample(): Sample {
	let idle = 0;
	let total = 0;
	for (const cpu of cpus()) {
		const { user, nice, sys, idle: cpuIdle, irq } = cpu.times;
		idle += cpuIdle;
		total += user + nice + sys + cpuIdle + irq;
	}
	return { at: performance.now(), idle, total };
}

/**
 * The machine's idle CPU, in cores, averaged over the last few seconds (from
 * the kernel's per-CPU times, so every process counts: other relays, the
 * engines, whatever else runs). What a new re-encoded broadcast is admitted
 * against. Sampling stops with close().
 */
export class CpuLoad {
	readonly #windowMs: number;
	readonly #samples: Sample[] = [sample()];
	readonly #timer: NodeJS.Timeout;
	readonly #cores = cpus().length;

	constructor(options: { windowMs?: number; intervalMs?: number } = {}) {
		this.#windowMs = options.windowMs ?? 5000;
		this.#timer = setInterval(() => {
			this.#samples.push(sample());
			const oldest = performance.now() - this.#windowMs;
			while (this.#samples.length > 2 && this.#samples[1]!.at <= oldest) this.#samples.shift();
		}, options.intervalMs ?? 1000);
		this.#timer.unref();
	}

	get cores(): number {
		return this.#cores;
	}

	/** Idle cores over the window (up to `cores`); all of them until a second has been sampled. */
	get idleCores(): number {
		const first = this.#samples[0]!;
		const last = this.#samples.at(-1)!;
		const total = last.total - first.total;
		if (total <= 0) return this.#cores;
		return ((last.idle - first.idle) / total) * this.#cores;
	}

	close(): void {
		clearInterval(this.#timer);
	}
}

/** Cores a re-encoder of this picture is expected to need (measured at 720p30 VP8: see README), scaled by pixel rate. */
export function reencoderCoresFor(
	video: { width: number; height: number; fps: number; ladder?: Array<{ width: number; height: number; fps: number }> },
	engine: 'libav' | 'ffmpeg',
): number {
	const at720p30 = engine === 'libav' ? 0.3 : 0.5;
	// A ladder decodes once and encodes each layer: the decode (about a third of the work at 720p)
	// follows the input's pixel rate, each encode its layer's.
	const pixelRate = (r: { width: number; height: number; fps: number }): number => (r.width * r.height * r.fps) / (1280 * 720 * 30);
	const layers = video.ladder && video.ladder.length > 1 ? video.ladder : [video];
	const work = pixelRate(video) / 3 + (layers.reduce((sum, layer) => sum + pixelRate(layer), 0) * 2) / 3;
	return Math.max(0.05, at720p30 * work);
}
