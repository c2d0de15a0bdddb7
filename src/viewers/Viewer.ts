import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { ClosedError } from '../errors.js';
import type { ViewerPlacement } from '../fanout/FanOut.js';
import type { Logger } from '../logger.js';
import { ViewerLayers, type ViewerLayersInfo } from './ViewerLayers.js';

export interface ViewerTransportOptions {
	/** Addresses the WebRtcTransport listens on (and announces). */
	listenIps: ms.TransportListenIp[];
	initialAvailableOutgoingBitrate: number;
	/** WebRTC viewers that do not connect, or stay disconnected, this long are ended, ms. */
	peerTimeoutMs: number;
	/**
	 * A connected viewer with no video this long gets another keyframe request (see
	 * watchFirstKeyframe), ms. Default: no repeat beyond mediasoup's own.
	 */
	firstKeyframeStallMs?: number;
}

export type ViewerCloseReason = 'closed' | 'worker-died' | 'transport-closed' | 'source-changed' | 'broadcast-closed';

export interface ViewerEvents {
	/** The viewer ended; `reason` says why ("worker-died": reconnect it). */
	close: [ViewerCloseReason];
	'@close': [ViewerCloseReason];
}

export interface ViewerInfo {
	id: string;
	placement: Omit<ViewerPlacement, 'consumers'>;
	consumers: Array<{ id: string; kind: ms.MediaKind; paused: boolean }>;
	iceState: ms.IceState;
	dtlsState: ms.DtlsState;
	/** The simulcast layer of its video (a re-encoded ladder only). */
	layers?: ViewerLayersInfo;
}

export interface ViewerOptions {
	placement: ViewerPlacement;
	transport: ms.WebRtcTransport | ms.PlainTransport;
	consumers: ms.Consumer[];
	/** Gives the placement back to the fan-out; called once, when the viewer closes. */
	release(): void;
	/** Simulcast: the broadcast's layer ceiling and the viewer's own maximum, if any. */
	layers?: { ceiling: number; preferred?: number };
	logger: Logger;
}

/**
 * One viewer: a transport on the router the fan-out chose, and a consumer per
 * published track. The viewer owns its transport (closing it closes the
 * consumers) and gives its placement back when it closes. Viewers are made by
 * the audience (src/broadcast/Audience.ts), which also closes them when their
 * worker dies: a viewer does not guess that from its transport's events.
 */
export class Viewer extends EventEmitter<ViewerEvents> {
	readonly id = randomUUID();
	readonly #placement: ViewerPlacement;
	readonly #transport: ms.WebRtcTransport | ms.PlainTransport;
	readonly #consumers: ms.Consumer[];
	readonly #release: () => void;
	/** The simulcast layer of its video consumer, when it consumes a ladder. */
	readonly layers: ViewerLayers | undefined;
	#closed = false;

	constructor({ placement, transport, consumers, release, layers, logger }: ViewerOptions) {
		super();
		this.#placement = placement;
		this.#transport = transport;
		this.#consumers = consumers;
		this.#release = release;
		const simulcast = consumers.find((c) => c.kind === 'video' && c.type === 'simulcast');
		this.layers = simulcast ? new ViewerLayers(simulcast, layers ?? { ceiling: Number.MAX_SAFE_INTEGER }) : undefined;
		for (const consumer of consumers) {
			consumer.on('producerclose', () => {
				logger.debug({ viewerId: this.id, kind: consumer.kind }, 'consumed producer closed');
				if (consumers.every((c) => c.closed || c.producerPaused)) this.#end('source-changed');
			});
		}
	}

	get closed(): boolean {
		return this.#closed;
	}

	get transport(): ms.WebRtcTransport | ms.PlainTransport {
		return this.#transport;
	}

	get consumers(): readonly ms.Consumer[] {
		return this.#consumers;
	}

	get placement(): ViewerPlacement {
		return this.#placement;
	}

	get info(): ViewerInfo {
		const { consumers: _ignored, ...placement } = this.#placement;
		return {
			id: this.id,
			placement,
			consumers: this.#consumers.map((c) => ({ id: c.id, kind: c.kind, paused: c.paused })),
			iceState: 'iceState' in this.#transport ? this.#transport.iceState : 'completed',
			dtlsState: 'dtlsState' in this.#transport ? this.#transport.dtlsState : 'connected',
			...(this.layers ? { layers: this.layers.info } : {}),
		};
	}

	async connect(dtlsParameters: ms.DtlsParameters): Promise<void> {
		if (this.#closed) throw new ClosedError(`viewer ${this.id}`);
		if (!('dtlsState' in this.#transport)) throw new ClosedError(`viewer ${this.id} is a plain-RTP viewer; it has no DTLS to connect`);
		await this.#transport.connect({ dtlsParameters });
	}

	async resume(): Promise<void> {
		if (this.#closed) throw new ClosedError(`viewer ${this.id}`);
		await Promise.all(this.#consumers.map((c) => c.resume()));
	}

	/** Asks for a keyframe on behalf of this viewer, as a PLI from it would. */
	async requestKeyFrame(): Promise<void> {
		await Promise.all(this.#consumers.filter((c) => c.kind === 'video' && !c.closed).map((c) => c.requestKeyFrame()));
	}

	/** Ends the viewer: closes its transport and gives its placement back. Idempotent. */
	close(reason: ViewerCloseReason = 'closed'): void {
		this.#end(reason);
	}

	#end(reason: ViewerCloseReason): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#transport.close();
		this.#release();
		this.emit('@close', reason);
		this.emit('close', reason);
		this.removeAllListeners();
	}
}
