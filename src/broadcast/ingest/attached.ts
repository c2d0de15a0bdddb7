import type { types as ms } from 'mediasoup';
import { RouterPipes } from '../../fanout/pipe.js';
import type { IngestSource } from './IngestSource.js';

/**
 * A producer the application already has, on a router of its own in this
 * process. It is piped into the ingest router; the pipe is this source's and
 * closes with it (the application's producer and router stay the
 * application's). After the ingest worker died it is piped again, as long as
 * the application's producer lives.
 */
export async function attachProducer(app: { producer: ms.Producer; router: ms.Router }, ingestRouter: ms.Router): Promise<IngestSource> {
	if (app.router.id === ingestRouter.id) return localSource(app.producer);
	const pipes = new RouterPipes();
	try {
		const { producer } = await pipes.pipe({ producerId: app.producer.id, source: app.router, target: ingestRouter });
		return {
			kind: producer.kind,
			producer,
			reattach: async (router) => (app.producer.closed || app.router.closed ? undefined : attachProducer(app, router)),
			close: () => pipes.close(),
		};
	} catch (error) {
		pipes.close();
		throw error;
	}
}

/** The application made its producer on the ingest router itself: it stays the application's, and dies with the router. */
function localSource(producer: ms.Producer): IngestSource {
	return { kind: producer.kind, producer, reattach: async () => undefined, close: () => undefined };
}
