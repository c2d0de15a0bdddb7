import type { types as ms } from 'mediasoup';
import type { CodecName } from '../../codecs.js';
import type { IngestSource, IngestTransportOptions } from './IngestSource.js';
import { reachableIp } from './IngestSource.js';

export interface RtpIngestEndpoint {
	kind: ms.MediaKind;
	codec: CodecName;
	producerId: string;
	/** Send RTP here… */
	ip: string;
	port: number;
	/** …and RTCP here. */
	rtcpPort: number;
	rtpParameters: ms.RtpParameters;
}

/**
 * One plain-RTP stream from an external encoder: a comedia PlainTransport
 * (the relay learns the sender's address from its first packet) and its
 * producer. The transport is the source's: it closes with the producer and
 * with close(). A sender cannot be moved to a new address, so after the ingest
 * worker died the source is not re-attached.
 */
export async function openRtpStream(
	router: ms.Router,
	stream: { kind: ms.MediaKind; codec: CodecName; rtpParameters: ms.RtpParameters },
	options: IngestTransportOptions,
): Promise<{ source: IngestSource; endpoint: RtpIngestEndpoint }> {
	const transport = await router.createPlainTransport({
		listenIp: options.listenIp,
		rtcpMux: false,
		comedia: true,
		appData: { broadcastId: options.broadcastId, tier: 'rtp-ingest' },
	});
	try {
		const producer = await transport.produce({ kind: stream.kind, rtpParameters: stream.rtpParameters });
		producer.observer.once('close', () => transport.close());
		return {
			source: { kind: stream.kind, producer, reattach: async () => undefined, close: () => transport.close() },
			endpoint: {
				kind: stream.kind,
				codec: stream.codec,
				producerId: producer.id,
				ip: reachableIp(options.listenIp, transport),
				port: transport.tuple.localPort,
				rtcpPort: transport.rtcpTuple!.localPort,
				rtpParameters: producer.rtpParameters,
			},
		};
	} catch (error) {
		transport.close();
		throw error;
	}
}
