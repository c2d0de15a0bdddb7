import type { types as ms } from 'mediasoup';
import { relayRequest } from '../relayClient.js';

export interface PipeToRelayOptions {
	/** The upstream app's router holding the producer. */
	router: ms.Router;
	producer: ms.Producer;
	/** Base URL of the relay service, e.g. http://relay.example:8080 */
	relayUrl: string;
	broadcastId: string;
	/** Ingest bearer token, if the relay requires one. */
	token?: string;
	/** Address the upstream PipeTransport listens on (and announces). Default 127.0.0.1. */
	listenIp?: ms.TransportListenIp;
}

export interface RelayPipe {
	transport: ms.PipeTransport;
	consumer: ms.Consumer;
	sessionUrl: string;
	/** Ends the pipe on both sides. */
	close(): Promise<void>;
}

/**
 * The upstream half of piping a producer into a relay on another host: the
 * cross-host form of router.pipeToRouter(). Creates a PipeTransport on the
 * app's router, exchanges addresses with the relay's pipe-ingest API,
 * consumes the producer and has the relay produce it into the broadcast.
 */
export async function pipeToRelay(options: PipeToRelayOptions): Promise<RelayPipe> {
	const { router, producer, relayUrl, broadcastId, token } = options;
	const base = relayUrl.replace(/\/+$/, '');
	const listenIp = options.listenIp ?? { ip: '127.0.0.1' };
	const transport = await router.createPipeTransport({ listenIp });
	let sessionUrl: string | undefined;
	try {
		const local = { ip: typeof listenIp === 'string' ? listenIp : (listenIp.announcedIp ?? transport.tuple.localIp), port: transport.tuple.localPort };
		const opened = await relayRequest<{ sessionUrl: string; ip: string; port: number }>(base, `/api/broadcasts/${encodeURIComponent(broadcastId)}/pipe-ingest`, {
			method: 'POST',
			body: local,
			token,
		});
		sessionUrl = new URL(opened.sessionUrl, `${base}/`).toString();
		await transport.connect({ ip: opened.ip, port: opened.port });
		const consumer = await transport.consume({ producerId: producer.id });
		await relayRequest(base, `${sessionUrl}/producers`, {
			method: 'POST',
			body: { kind: consumer.kind, rtpParameters: consumer.rtpParameters, paused: consumer.producerPaused },
			token,
		});
		const url = sessionUrl;
		return {
			transport,
			consumer,
			sessionUrl: url,
			close: async () => {
				transport.close();
				await relayRequest(base, url, { method: 'DELETE', token }).catch(() => undefined);
			},
		};
	} catch (error) {
		transport.close();
		if (sessionUrl) await relayRequest(base, sessionUrl, { method: 'DELETE', token }).catch(() => undefined);
		throw error;
	}
}
