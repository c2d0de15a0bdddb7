import type { types as ms } from 'mediasoup';

/**
 * Keyframe requests (PLI and FIR) of a broadcast, each counted where mediasoup
 * reports it (trace events), not inferred from another count.
 */
export interface KeyframeRequestStats {
	/** PLI/FIR that viewers sent (received by their consumers). */
	fromViewers: number;
	/**
	 * PLI/FIR that reached a re-encoded producer from the viewer routers
	 * (received by the consumers of that producer, which the viewer routers'
	 * pipes are) and ended there. 0 in baseline mode, where there is none.
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
	/** Ids of the re-encoded producers: requests their consumers receive end there. */
	readonly #reencoded = new Set<string>();

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

	/** A re-encoded producer: counts what it passes on to FFmpeg, and marks it as where requests end. */
	async watchReencoded(producer: ms.Producer): Promise<void> {
		this.#reencoded.add(producer.id);
		producer.observer.once('close', () => this.#reencoded.delete(producer.id));
		await this.watchProducer(producer, 'toReencoder');
	}

	/**
	 * A consumer that carries a published track towards viewers (a pipe
	 * consumer): requests it receives count as absorbed when it consumes a
	 * re-encoded producer, and are not counted otherwise.
	 */
	async watchPipe(consumer: ms.Consumer): Promise<void> {
		if (this.#reencoded.has(consumer.producerId)) await this.watchConsumer(consumer, 'absorbed');
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
