import type { types as ms } from 'mediasoup';

/** A producer piped into another router, and the consumer on the source router that feeds it. */
export interface Pipe {
	/** The producer in the target router. Closing it closes the pipe. */
	producer: ms.Producer;
	/** The pipe consumer of the source producer; keyframe requests from the target side arrive here. */
	consumer: ms.Consumer;
}

interface TransportPair {
	local: ms.PipeTransport;
	remote: ms.PipeTransport;
	/** Pipes using the pair; the pair closes when the last one does. */
	users: number;
	release(): void;
}

/**
 * Pipes producers from one router into another: what router.pipeToRouter()
 * does, with one difference.
 *
 * mediasoup 3.12's pipeToRouter() gives the pipe producer the source
 * producer's id, and a worker cannot hold two producers with one id. So it
 * cannot pipe into two routers of the same worker, nor between routers of one
 * worker; a fan-out needs both (several viewer routers per worker). Here the
 * pipe producer gets a fresh id, as pipeToRouter({ keepId: false }) does in
 * later mediasoup releases.
 *
 * Each owner of pipes (the fan-out, an attached source) has its own
 * RouterPipes, which keeps one PipeTransport pair per router pair, on
 * loopback, as mediasoup keeps its pipe map per Router. A pair closes with
 * either router, with its last pipe, or with close().
 */
export class RouterPipes {
	readonly #pairs = new Map<string, Promise<TransportPair>>();
	#closed = false;

	async pipe(options: { producerId: string; source: ms.Router; target: ms.Router }): Promise<Pipe> {
		const { producerId, source, target } = options;
		const pair = await this.#transportPair(source, target);
		pair.users += 1;
		let pipeConsumer: ms.Consumer | undefined;
		let piped: ms.Producer;
		try {
			pipeConsumer = await pair.local.consume({ producerId });
			piped = await pair.remote.produce({
				kind: pipeConsumer.kind,
				rtpParameters: pipeConsumer.rtpParameters,
				paused: pipeConsumer.producerPaused,
				appData: { pipedFrom: producerId },
			});
		} catch (error) {
			pipeConsumer?.close();
			pair.release();
			throw error;
		}
		const consumer = pipeConsumer;
		consumer.observer.once('close', () => {
			piped.close();
			pair.release();
		});
		consumer.observer.on('pause', () => void piped.pause());
		consumer.observer.on('resume', () => void piped.resume());
		piped.observer.once('close', () => consumer.close());
		return { producer: piped, consumer };
	}

	/** Closes every transport pair, and so every pipe made here. Idempotent. */
	close(): void {
		this.#closed = true;
		for (const pair of [...this.#pairs.values()]) {
			void pair.then(
				(p) => {
					p.local.close();
					p.remote.close();
				},
				() => undefined,
			);
		}
		this.#pairs.clear();
	}

	#transportPair(source: ms.Router, target: ms.Router): Promise<TransportPair> {
		if (this.#closed) return Promise.reject(new Error('router pipes closed'));
		const key = `${source.id}>${target.id}`;
		let pair = this.#pairs.get(key);
		if (pair) return pair;
		pair = (async () => {
			const local = await source.createPipeTransport({ listenIp: '127.0.0.1' });
			const remote = await target.createPipeTransport({ listenIp: '127.0.0.1' }).catch((error: unknown) => {
				local.close();
				throw error;
			});
			const drop = (): void => {
				if (this.#pairs.get(key) === pair) this.#pairs.delete(key);
				local.close();
				remote.close();
			};
			local.observer.once('close', drop);
			remote.observer.once('close', drop);
			if (this.#closed) drop();
			await local.connect({ ip: remote.tuple.localIp, port: remote.tuple.localPort });
			await remote.connect({ ip: local.tuple.localIp, port: local.tuple.localPort });
			const entry: TransportPair = {
				local,
				remote,
				users: 0,
				release() {
					entry.users -= 1;
					if (entry.users <= 0) drop();
				},
			};
			return entry;
		})();
		this.#pairs.set(key, pair);
		pair.catch(() => {
			if (this.#pairs.get(key) === pair) this.#pairs.delete(key);
		});
		return pair;
	}
}
