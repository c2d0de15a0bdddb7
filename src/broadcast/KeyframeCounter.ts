import type { types as ms } from 'mediasoup';

/**
 * Keyframe requests (PLI and FIR) of a broadcast, each counted where mediasoup
 * reports it (trace events), not inferred from another count.
 */
export interface KeyframeRequestStats {
	/** PLI/FIR that viewers sent (received by their consumers). */
	fromViewers: number;
	/**
	 * PLI/FIR that reached the re-encoded producer from the viewer routers
	 * (received by its pipe consumers) and ended there. 0 in baseline mode,
	 * where there is no re-encoded producer.
	 */
	absorbed: number;
	/** PLI/FIR the relay sent to the broadcaster (sent by the broadcaster's producer, after mediasoup's one-outstanding-request throttle). */
	forwardedUpstream: number;
	/** PLI/FIR the re-encoded producer passed on to FFmpeg, which ignores them (it keyframes on its own clock). */
	toReencoder: number;
}

type Counted = keyof KeyframeRequestStats;

/**
 * Subscribes to the PLI/FIR trace events of the producers and consumers it is
 * given, each into one count. Watching the same object twice counts it once,
 * so a source kept across a rebuild keeps one listener.
 */
export class KeyframeCounter {
	readonly #counts: KeyframeRequestStats = { fromViewers: 0, absorbed: 0, forwardedUpstream: 0, toReencoder: 0 };
	readonly #watched = new WeakSet<ms.Producer | ms.Consumer>();

	get counts(): KeyframeRequestStats {
		return { ...this.#counts };
	}

	/** A producer's trace reports the requests it sends towards its sender. */
	async watchProducer(producer: ms.Producer, into: Counted): Promise<void> {
		if (!this.#claim(producer)) return;
		producer.on('trace', (trace) => this.#count(trace.type, into));
		await producer.enableTraceEvent(['pli', 'fir']).catch(() => this.#ignoreClosed(producer));
	}

	/** A consumer's trace reports the requests it receives from its receiver. */
	async watchConsumer(consumer: ms.Consumer, into: Counted): Promise<void> {
		if (!this.#claim(consumer)) return;
		consumer.on('trace', (trace) => this.#count(trace.type, into));
		await consumer.enableTraceEvent(['pli', 'fir']).catch(() => this.#ignoreClosed(consumer));
	}

	#claim(entity: ms.Producer | ms.Consumer): boolean {
		if (entity.kind !== 'video' || this.#watched.has(entity)) return false;
		this.#watched.add(entity);
		return true;
	}

	#count(type: string, into: Counted): void {
		if (type === 'pli' || type === 'fir') this.#counts[into] += 1;
	}

	#ignoreClosed(entity: ms.Producer | ms.Consumer): void {
		// Closed while being watched: nothing more to count.
		if (!entity.closed) throw new Error(`could not enable trace events on ${entity.id}`);
	}
}
