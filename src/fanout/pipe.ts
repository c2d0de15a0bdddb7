import type { types as ms } from 'mediasoup';

/**
 * Pipes a producer from one router into another and returns the producer in
 * the target router.
 *
 * Across workers this is router.pipeToRouter(). mediasoup 3.12 cannot pipe
 * between two routers of the same worker (the pipe producer keeps the source
 * producer's id, which the worker already has), so there the same thing is
 * done by hand: a PipeTransport pair on loopback, and a pipe producer with a
 * fresh id. The pair belongs to the two routers and closes with either.
 */
export async function pipeProducer(options: {
	producerId: string;
	source: ms.Router;
	target: ms.Router;
	sameWorker: boolean;
}): Promise<ms.Producer> {
	const { producerId, source, target, sameWorker } = options;
	if (!sameWorker) {
		const { pipeProducer: piped } = await source.pipeToRouter({ producerId, router: target });
		return piped!;
	}
	const [local, remote] = await transportPair(source, target);
	const pipeConsumer = await local.consume({ producerId });
	let piped: ms.Producer;
	try {
		piped = await remote.produce({
			kind: pipeConsumer.kind,
			rtpParameters: pipeConsumer.rtpParameters,
			paused: pipeConsumer.producerPaused,
			appData: { pipedFrom: producerId },
		});
	} catch (error) {
		pipeConsumer.close();
		throw error;
	}
	pipeConsumer.observer.once('close', () => piped.close());
	pipeConsumer.observer.on('pause', () => void piped.pause());
	pipeConsumer.observer.on('resume', () => void piped.resume());
	piped.observer.once('close', () => pipeConsumer.close());
	return piped;
}

const pairs = new Map<string, Promise<[ms.PipeTransport, ms.PipeTransport]>>();

function transportPair(source: ms.Router, target: ms.Router): Promise<[ms.PipeTransport, ms.PipeTransport]> {
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
			pairs.delete(key);
			local.close();
			remote.close();
		};
		local.observer.once('close', drop);
		remote.observer.once('close', drop);
		await local.connect({ ip: remote.tuple.localIp, port: remote.tuple.localPort });
		await remote.connect({ ip: local.tuple.localIp, port: local.tuple.localPort });
		return [local, remote] as [ms.PipeTransport, ms.PipeTransport];
	})();
	pairs.set(key, pair);
	pair.catch(() => pairs.delete(key));
	return pair;
}
