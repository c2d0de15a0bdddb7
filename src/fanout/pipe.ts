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
