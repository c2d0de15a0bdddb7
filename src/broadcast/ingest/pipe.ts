import type { types as ms } from 'mediasoup';
import { InvalidOptionError, InvalidRtpParametersError } from '../../errors.js';
import type { IngestSource, IngestTransportOptions } from './IngestSource.js';
import { reachableIp } from './IngestSource.js';

/** The relay's end of a cross-host pipe: the upstream app connects its PipeTransport here and then produces. */
export interface PipeIngest {
	readonly transport: ms.PipeTransport;
	/** Where the upstream PipeTransport must send. */
	readonly ip: string;
	readonly port: number;
	/** Creates the ingest producer from the upstream pipe consumer's parameters. */
	produce(options: { kind: ms.MediaKind; rtpParameters: ms.RtpParameters; paused?: boolean }): Promise<ms.Producer>;
	close(): void;
}

/**
 * The relay's half of pipeToRouter() across hosts: a PipeTransport on the
 * ingest router connected to the upstream app's PipeTransport at `remote`.
 * The upstream side then consumes its producer and hands the consumer's RTP
 * parameters to produce(), whose producer goes to `adopt` (the ingest, which
 * claims the kind first). The transport is the pipe ingest's; its producers
 * close with it. After the ingest worker died the upstream must pipe again.
 */
export async function openPipeIngest(
	router: ms.Router,
	remote: { ip: string; port: number },
	options: IngestTransportOptions & { adopt(kind: ms.MediaKind, create: () => Promise<IngestSource>): Promise<IngestSource> },
): Promise<PipeIngest> {
	const transport = await router.createPipeTransport({ listenIp: options.listenIp, appData: { broadcastId: options.broadcastId, tier: 'pipe-ingest' } });
	try {
		await transport.connect({ ip: remote.ip, port: remote.port });
	} catch (error) {
		transport.close();
		throw new InvalidOptionError(`cannot connect the pipe to ${remote.ip}:${remote.port}: ${(error as Error).message}`);
	}
	return {
		transport,
		ip: reachableIp(options.listenIp, transport),
		port: transport.tuple.localPort,
		produce: async ({ kind, rtpParameters, paused }) => {
			const source = await options.adopt(kind, async () => {
				try {
					const producer = await transport.produce({ kind, rtpParameters, paused: paused ?? false });
					return { kind, producer, reattach: async () => undefined, close: () => transport.close() };
				} catch (error) {
					throw new InvalidRtpParametersError(`the pipe producer's RTP parameters are not valid: ${(error as Error).message}`, { cause: error });
				}
			});
			return source.producer;
		},
		close: () => transport.close(),
	};
}
