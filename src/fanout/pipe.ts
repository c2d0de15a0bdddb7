import type { types as ms } from 'mediasoup';

/**
 * Pipes a producer from one router into another and returns the producer in
 * the target router: what router.pipeToRouter() does, with one difference.
 *
 * mediasoup 3.12's pipeToRouter() gives the pipe producer the source
 * producer's id, and a worker cannot hold two producers with one id. So it
 * cannot pipe into two routers of the same worker, nor between routers of one
 * worker; a fan-out needs both (several viewer routers per worker). Here the
 * pipe producer gets a fresh id, as pipeToRouter({ keepId: false }) does in
 * later mediasoup releases. The PipeTransport pair is made once per router
 * pair, on loopback, and closes with either router.
 */
export async function pipeProducer(options: { producerId: string; source: ms.Router; target: ms.Router }): Promise<ms.Producer> {
	const { producerId, source, target } = options;
	const pair = await transportPair(source, target);
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
	return piped;
}

interface TransportPair {
	local: ms.PipeTransport;
	remote: ms.PipeTransport;
	/** Pipes using the pair; the pair closes when the last one does. */
	users: number;
	release(): void;
}

const pairs = new Map<string, Promise<TransportPair>>();

function transportPair(source: ms.Router, target: ms.Router): Promise<TransportPair> {
	const key = `${source.id}>${target.id}`;
	let pair = pairs.get(key);
	if (pair) return pair;
	pair = (async () => {
		const local = await source.createPipeTransport({ listenIp: '127.0.0.1' });
		const remote = await target.createPipeTransport({ listenIp: '127.0.0.1' }).catch((error: unknown) => {
			local.close();
			throw error;
		});
		const drop = (): void => {
			if (pairs.get(key) === pair) pairs.delete(key);
			local.close();
			remote.close();
		};
		local.observer.once('close', drop);
		remote.observer.once('close', drop);
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
	pairs.set(key, pair);
	pair.catch(() => pairs.delete(key));
	return pair;
}
