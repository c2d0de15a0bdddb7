import type { types as ms } from 'mediasoup';
import { InvalidOptionError } from '../errors.js';

export interface ViewerLayersInfo {
	/** The layer the viewer receives now (0: the lowest), or null while it receives none (paused, switching at start). */
	current: number | null;
	/** The viewer's own maximum, if it set one. */
	preferred: number | null;
	/** The broadcast's ceiling. */
	ceiling: number;
	/** Layer changes mediasoup made for this viewer (bandwidth estimation, or a preference). */
	switches: number;
	/** Seconds spent on each layer, lowest first. */
	secondsPerLayer: number[];
}

/**
 * The simulcast layer of one viewer's video consumer: which layer mediasoup
 * sends it (chosen by its bandwidth estimate, never above the viewer's own
 * maximum or the broadcast's ceiling), how often that changed, and for how
 * long it stayed on each. Only for a simulcast consumer (a re-encoded ladder).
 */
export class ViewerLayers {
	readonly #consumer: ms.Consumer;
	readonly #layerCount: number;
	readonly #msPerLayer: number[];
	#preferred: number | undefined;
	#ceiling: number;
	#current: number | undefined;
	#since = performance.now();
	#switches = 0;

	constructor(consumer: ms.Consumer, options: { ceiling: number; preferred?: number }) {
		this.#consumer = consumer;
		this.#layerCount = spatialLayersOf(consumer);
		this.#msPerLayer = new Array<number>(this.#layerCount).fill(0);
		this.#ceiling = Math.min(options.ceiling, this.#layerCount - 1);
		this.#preferred = options.preferred;
		this.#current = consumer.currentLayers?.spatialLayer;
		consumer.on('layerschange', (layers) => this.#changed(layers?.spatialLayer));
	}

	/** What a consumer of this viewer is asked for at creation: the lower of the viewer's maximum and the ceiling. */
	static target(ceiling: number, preferred: number | undefined): number {
		return Math.min(preferred ?? ceiling, ceiling);
	}

	/** The viewer's own maximum layer (undefined: as high as the ceiling). Refuses a layer the ladder does not have. */
	async setPreferred(layer: number | undefined): Promise<void> {
		if (layer !== undefined && (!Number.isInteger(layer) || layer < 0 || layer >= this.#layerCount)) {
			throw new InvalidOptionError(`maxLayer must be a layer of this broadcast's ladder: 0 (lowest) to ${this.#layerCount - 1}, or null for no limit`);
		}
		this.#preferred = layer;
		await this.#apply();
	}

	/** The broadcast's ceiling changed. */
	async setCeiling(ceiling: number): Promise<void> {
		this.#ceiling = Math.min(ceiling, this.#layerCount - 1);
		await this.#apply();
	}

	get info(): ViewerLayersInfo {
		const spent = [...this.#msPerLayer];
		if (this.#current !== undefined) spent[this.#current] = (spent[this.#current] ?? 0) + performance.now() - this.#since;
		return {
			current: this.#current ?? null,
			preferred: this.#preferred ?? null,
			ceiling: this.#ceiling,
			switches: this.#switches,
			secondsPerLayer: spent.map((ms) => Math.round(ms / 100) / 10),
		};
	}

	async #apply(): Promise<void> {
		if (this.#consumer.closed) return;
		await this.#consumer.setPreferredLayers({ spatialLayer: ViewerLayers.target(this.#ceiling, this.#preferred), temporalLayer: 0 });
	}

	#changed(layer: number | undefined): void {
		const now = performance.now();
		if (this.#current !== undefined) this.#msPerLayer[this.#current] = (this.#msPerLayer[this.#current] ?? 0) + now - this.#since;
		// The first layer a viewer gets is where it starts, not a switch.
		if (this.#current !== undefined && layer !== undefined && layer !== this.#current) this.#switches += 1;
		this.#current = layer;
		this.#since = now;
	}
}

/** Spatial layers a consumer can get: mediasoup writes them into its encoding's scalability mode ("L3T1" for simulcast). */
export function spatialLayersOf(consumer: ms.Consumer): number {
	if (consumer.type !== 'simulcast') return 1;
	const match = /^[LS](\d+)/.exec(consumer.rtpParameters.encodings?.[0]?.scalabilityMode ?? '');
	return match ? Number(match[1]) : 1;
}
