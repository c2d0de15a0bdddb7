import { EventEmitter } from 'node:events';
import { ClosedError } from '../errors.js';
import { FanOut, type FanOutOptions, type PublishedTrack } from '../fanout/FanOut.js';
import type { Logger } from '../logger.js';
import type { JoinPlan, ViewerTransport } from '../viewers/joinPlans.js';
import { Viewer, type ViewerCloseReason } from '../viewers/Viewer.js';
import { ViewerLayers, type ViewerLayersInfo } from '../viewers/ViewerLayers.js';
import { watchFirstKeyframe } from '../viewers/watchFirstKeyframe.js';
import type { KeyframeCounter } from './KeyframeCounter.js';

export interface AudienceOptions extends Omit<FanOutOptions, 'onPipe'> {
	keyframes: KeyframeCounter;
	/** The broadcast's simulcast layer ceiling now (0: the lowest layer). */
	maxLayer(): number;
}

export interface AudienceEvents {
	viewerjoined: [Viewer];
	viewerleft: [{ viewerId: string; reason: ViewerCloseReason }];
}

/**
 * The viewer side of a broadcast: the fan-out (viewer routers and the pipes
 * into them) and the viewers placed on it. Every kind of viewer joins through
 * join(); a viewer's placement goes back to the fan-out when it closes. It is
 * told when a worker dies (dropWorker) or when what viewers consume is gone
 * (dropAll), and returns the viewers lost.
 */
export class Audience extends EventEmitter<AudienceEvents> {
	readonly #options: AudienceOptions;
	readonly #logger: Logger;
	readonly #viewers = new Map<string, Viewer>();
	/** Layer switches and time per layer of viewers gone (the running totals include them). */
	readonly #layerHistory = new LayerTotals();
	#fanOut: FanOut;
	#closed = false;

	constructor(options: AudienceOptions) {
		super();
		this.#options = options;
		this.#logger = options.logger.child({ module: 'Audience', broadcastId: options.broadcastId });
		this.#fanOut = this.#newFanOut();
	}

	get fanOut(): FanOut {
		return this.#fanOut;
	}

	get viewers(): ReadonlyMap<string, Viewer> {
		return this.#viewers;
	}

	get tracks(): readonly PublishedTrack[] {
		return this.#fanOut.tracks;
	}

	/** Viewers per current layer, and running totals of switches and seconds per layer (viewers gone included). */
	layerStats(layerCount: number): { viewersPerLayer: number[]; switches: number; secondsPerLayer: number[] } {
		const totals = new LayerTotals(this.#layerHistory);
		const viewersPerLayer = new Array<number>(layerCount).fill(0);
		for (const viewer of this.#viewers.values()) {
			if (!viewer.layers) continue;
			const info = viewer.layers.info;
			totals.add(info);
			if (info.current !== null && info.current < layerCount) viewersPerLayer[info.current]! += 1;
		}
		return { viewersPerLayer, switches: totals.switches, secondsPerLayer: totals.seconds(layerCount) };
	}

	/** The broadcast's layer ceiling changed: every viewer of the ladder follows. */
	async setLayerCeiling(ceiling: number): Promise<void> {
		await Promise.all([...this.#viewers.values()].map((v) => v.layers?.setCeiling(ceiling).catch(() => undefined)));
	}

	setTracks(tracks: PublishedTrack[]): void {
		this.#fanOut.setTracks(tracks);
	}

	/**
	 * Adds a viewer: places it, opens its transport on the chosen router, pipes
	 * each track it consumes into that router and consumes it, then lets the
	 * plan finish (connect, answer). On any failure nothing is left behind.
	 */
	async join<T extends ViewerTransport, R>(plan: JoinPlan<T, R>, layers?: { preferred?: number }): Promise<{ viewer: Viewer; result: R }> {
		if (this.#closed) throw new ClosedError('broadcast audience');
		const fanOut = this.#fanOut;
		const placement = fanOut.assign(plan.payloadTypes, plan.tracks.length, plan.extensionIds);
		const { entry: _entry, worker: _worker, ...kept } = placement;
		let transport: T | undefined;
		try {
			const router = await placement.entry.router;
			transport = await plan.openTransport(router);
			const consumed = [];
			for (const track of plan.tracks) {
				const producer = await fanOut.pipedProducer(placement.entry, track);
				const consumeOptions = plan.consumeOptions(router, track, producer.id);
				if (!consumeOptions) continue;
				// A ladder: start the viewer no higher than it and the broadcast allow (mediasoup then picks by bandwidth).
				const ceiling = this.#options.maxLayer();
				const consumer = await transport.consume({
					...consumeOptions,
					...(track.kind === 'video' && producer.type === 'simulcast' ? { preferredLayers: { spatialLayer: ViewerLayers.target(ceiling, layers?.preferred), temporalLayer: 0 } } : {}),
				});
				consumed.push({ track, consumer });
				await this.#options.keyframes.watchConsumer(consumer, 'fromViewers');
			}
			const result = await plan.finish(transport, consumed);
			// The fan-out was dropped while this viewer joined (its pipeline's worker died): it must join again.
			if (this.#closed || fanOut !== this.#fanOut) throw new ClosedError(this.#closed ? 'broadcast' : 'broadcast pipeline (rebuilt while joining; join again)');
			const viewer = new Viewer({
				placement: kept,
				transport,
				consumers: consumed.map((c) => c.consumer),
				release: () => fanOut.release(kept),
				layers: { ceiling: this.#options.maxLayer(), ...(layers?.preferred !== undefined ? { preferred: layers.preferred } : {}) },
				logger: this.#logger,
			});
			plan.started?.(viewer, transport);
			const stallMs = plan.firstKeyframeStallMs;
			if (stallMs && 'dtlsState' in transport) {
				for (const { track, consumer } of consumed) {
					// The request goes to the viewer's consumer and to the pipe feeding its router: a pipe
					// that has carried nothing yet cannot pass the viewer's request on (see FanOut.requestKeyFrame).
					const request = async (): Promise<void> => {
						await Promise.all([consumer.requestKeyFrame(), fanOut.requestKeyFrame(kept.routerId, track.producer.id)]);
					};
					watchFirstKeyframe({ transport, consumer, stallMs, logger: this.#logger, request });
				}
			}
			this.#viewers.set(viewer.id, viewer);
			viewer.once('@close', (reason) => {
				this.#viewers.delete(viewer.id);
				if (viewer.layers) this.#layerHistory.add(viewer.layers.info);
				this.emit('viewerleft', { viewerId: viewer.id, reason });
			});
			this.emit('viewerjoined', viewer);
			return { viewer, result };
		} catch (error) {
			transport?.close();
			fanOut.release(kept);
			throw error;
		}
	}

	/** A worker died: its viewers are closed ("worker-died") and its routers forgotten. Returns the viewers lost. */
	dropWorker(workerIndex: number): string[] {
		const lost = [...this.#viewers.values()].filter((v) => v.placement.workerIndex === workerIndex);
		for (const viewer of lost) viewer.close('worker-died');
		this.#fanOut.dropWorker(workerIndex);
		return lost.map((v) => v.id);
	}

	/**
	 * What every viewer consumed is gone (the pipeline's worker died): all
	 * viewers are closed ("worker-died") and the fan-out starts afresh with no
	 * tracks. Returns the viewers lost.
	 */
	dropAll(): string[] {
		const lost = [...this.#viewers.values()];
		for (const viewer of lost) viewer.close('worker-died');
		this.#fanOut.close();
		this.#fanOut = this.#newFanOut();
		return lost.map((v) => v.id);
	}

	/** Closes every viewer ("broadcast-closed") and the fan-out. Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const viewer of [...this.#viewers.values()]) viewer.close('broadcast-closed');
		this.#fanOut.close();
		this.removeAllListeners();
	}

	#newFanOut(): FanOut {
		const { keyframes, ...options } = this.#options;
		return new FanOut({
			...options,
			// Requests that reach a re-encoded producer end there: that is what relay mode absorbs.
			onPipe: (consumer) => void keyframes.watchPipe(consumer).catch(() => undefined),
		});
	}
}

/** Running totals of layer switches and seconds per layer. */
class LayerTotals {
	switches = 0;
	readonly #seconds: number[] = [];

	constructor(from?: LayerTotals) {
		if (!from) return;
		this.switches = from.switches;
		this.#seconds.push(...from.#seconds);
	}

	add(info: ViewerLayersInfo): void {
		this.switches += info.switches;
		info.secondsPerLayer.forEach((seconds, layer) => (this.#seconds[layer] = (this.#seconds[layer] ?? 0) + seconds));
	}

	seconds(layerCount: number): number[] {
		return Array.from({ length: Math.max(layerCount, this.#seconds.length) }, (_, layer) => Math.round((this.#seconds[layer] ?? 0) * 10) / 10);
	}
}
