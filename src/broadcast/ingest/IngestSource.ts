import type { types as ms } from 'mediasoup';

/**
 * A broadcaster's producer on the ingest router, handed to the ingest by the
 * owner of how it got there (one owner per protocol: an attached producer,
 * plain RTP, a WebRTC publication, a cross-host pipe). The owner created the
 * transport the producer arrived on and is the one who closes it.
 */
export interface IngestSource {
	readonly kind: ms.MediaKind;
	/** The producer on the ingest router that feeds the pipeline. */
	readonly producer: ms.Producer;
	/**
	 * The ingest router this source was on is gone (its worker died): attach
	 * the same media to `router` and return the new source, or return undefined
	 * when that cannot be done from here (a remote sender must publish again).
	 */
	reattach(router: ms.Router): Promise<IngestSource | undefined>;
	/** Ends the source: closes what its owner created for it. Idempotent. */
	close(): void;
	/**
	 * How long its sender has sent nothing at all, ms, where the owner can tell (a
	 * WebRTC publisher): a new publish may then replace it (see Ingest).
	 */
	silentForMs?(): number;
}

/** What every ingest owner needs to open its transport. */
export interface IngestTransportOptions {
	broadcastId: string;
	listenIp: ms.TransportListenIp;
}

/** The address a sender reaches a transport at: the announced address when there is one. */
export function reachableIp(listenIp: ms.TransportListenIp, transport: ms.PlainTransport | ms.PipeTransport): string {
	return listenIp.announcedIp ?? transport.tuple.localIp;
}
