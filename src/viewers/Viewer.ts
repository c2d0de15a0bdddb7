import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { plainReceiverCapabilities } from '../codecs.js';
import { ClosedError } from '../errors.js';
import type { FanOut, ViewerPlacement, ViewerRouter } from '../fanout/FanOut.js';
import type { Logger } from '../logger.js';
import { buildAnswer, type AnswerSection } from '../sdp/buildAnswer.js';
import { parseOffer, sectionsFor } from '../sdp/parseOffer.js';
import { watchPeer } from './watchPeer.js';
import { consumeCapabilities, viewerPayloadTypes } from './capabilities.js';

export interface ViewerTransportOptions {
	/** Addresses the WebRtcTransport listens on (and announces). */
	listenIps: ms.TransportListenIp[];
	initialAvailableOutgoingBitrate: number;
	/** Called for every PLI or FIR a viewer sends (counted from consumer trace events). */
	onKeyframeRequest?: () => void;
	/** WebRTC viewers that do not connect, or stay disconnected, this long are ended, ms. */
	peerTimeoutMs: number;
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
}

/**
 * One viewer: a WebRtcTransport on the router the fan-out chose, and a
 * consumer per published track. The viewer owns its transport (closing it
 * closes the consumers) and gives its placement back when it closes.
 */
export class Viewer extends EventEmitter<ViewerEvents> {
	readonly id = randomUUID();
	readonly #fanOut: FanOut;
	readonly #placement: ViewerPlacement;
	readonly #transport: ms.WebRtcTransport | ms.PlainTransport;
	readonly #consumers: ms.Consumer[];
	#closed = false;

	private constructor(
		fanOut: FanOut,
		placement: ViewerPlacement & { worker: ms.Worker },
		transport: ms.WebRtcTransport | ms.PlainTransport,
		consumers: ms.Consumer[],
		logger: Logger,
	) {
		super();
		this.#fanOut = fanOut;
		const { worker, ...rest } = placement;
		this.#placement = rest;
		this.#transport = transport;
		this.#consumers = consumers;
		(transport as ms.Transport).on('routerclose', () => this.#end(worker.died ? 'worker-died' : 'transport-closed'));
		for (const consumer of consumers) {
			consumer.on('producerclose', () => {
				logger.debug({ viewerId: this.id, kind: consumer.kind }, 'consumed producer closed');
				if (consumers.every((c) => c.closed || c.producerPaused)) this.#end('source-changed');
			});
		}
	}

	/**
	 * Joins a plain WebRTC peer (werift, a browser, a WHEP client) from its SDP
	 * offer: places it, creates its transport and consumers, and returns the
	 * viewer and the SDP answer. On any failure nothing is left behind.
	 */
	static async fromOffer(fanOut: FanOut, offerSdp: string, options: ViewerTransportOptions, logger: Logger): Promise<{ viewer: Viewer; answer: string }> {
		const offer = parseOffer(offerSdp);
		const sections = sectionsFor(offer.media, 'receive');
		const tracks = fanOut.tracks.filter((t) => sections.has(t.kind));
		const payloadTypes = viewerPayloadTypes(offer.media, tracks);
		const placement = fanOut.assign(payloadTypes, tracks.length);
		let transport: ms.WebRtcTransport | undefined;
		try {
			const router = await placement.entry.router;
			transport = await createTransport(router, options);
			const answerSections = new Map<string, AnswerSection>();
			const consumers: ms.Consumer[] = [];
			const streamId = randomUUID();
			for (const track of tracks) {
				const section = sections.get(track.kind)!;
				const producer = await fanOut.pipedProducer(placement.entry, track);
				const consumer = await transport.consume({
					producerId: producer.id,
					rtpCapabilities: consumeCapabilities(router.rtpCapabilities, section),
				});
				consumers.push(consumer);
				await watchKeyframeRequests(consumer, options);
				answerSections.set(section.mid, {
					direction: 'sendonly',
					rtpParameters: consumer.rtpParameters,
					send: { cname: `relay-${streamId.slice(0, 8)}`, streamId, trackId: consumer.id },
				});
			}
			// mediasoup takes the DTLS client role (the answer says a=setup:active).
			await transport.connect({ dtlsParameters: { ...offer.dtlsParameters, role: 'server' } });
			const answer = buildAnswer(offer, transport, answerSections);
			const viewer = new Viewer(fanOut, strip(placement), transport, consumers, logger);
			watchPeer(transport, options.peerTimeoutMs, (reason) => {
				logger.info({ viewerId: viewer.id, reason }, 'viewer gone');
				viewer.close('transport-closed');
			});
			return { viewer, answer };
		} catch (error) {
			transport?.close();
			fanOut.release(placement);
			throw error;
		}
	}

	/**
	 * Joins a mediasoup-client style peer: given its RTP capabilities, creates a
	 * transport and paused consumers; the peer connects with connect() and
	 * resumes with resume().
	 */
	static async fromCapabilities(fanOut: FanOut, rtpCapabilities: ms.RtpCapabilities, options: ViewerTransportOptions, logger: Logger): Promise<Viewer> {
		const tracks = fanOut.tracks;
		// mediasoup-client takes whatever payload types the consumer has: any router profile fits.
		const placement = fanOut.assign({}, tracks.length);
		let transport: ms.WebRtcTransport | undefined;
		try {
			const router = await placement.entry.router;
			transport = await createTransport(router, options);
			const consumers: ms.Consumer[] = [];
			for (const track of tracks) {
				const producer = await fanOut.pipedProducer(placement.entry, track);
				if (!router.canConsume({ producerId: producer.id, rtpCapabilities })) continue;
				const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities, paused: true });
				consumers.push(consumer);
				await watchKeyframeRequests(consumer, options);
			}
			return new Viewer(fanOut, strip(placement), transport, consumers, logger);
		} catch (error) {
			transport?.close();
			fanOut.release(placement);
			throw error;
		}
	}

	/**
	 * Joins a plain-RTP receiver (load-test sinks, measuring decoders): a
	 * PlainTransport on the placed router sending to `remote`, with SRTP when
	 * asked so the worker does the same encryption work as for WebRTC.
	 */
	static async fromPlain(
		fanOut: FanOut,
		options: { remote: { ip: string; port: number; rtcpPort?: number }; enableSrtp?: boolean; kinds?: ms.MediaKind[]; listenIp: ms.TransportListenIp },
		logger: Logger,
	): Promise<Viewer> {
		const kinds = options.kinds ?? ['video', 'audio'];
		const tracks = fanOut.tracks.filter((t) => kinds.includes(t.kind));
		if (tracks.length === 0) throw new ClosedError('broadcast source (nothing to consume yet)');
		const placement = fanOut.assign({}, tracks.length);
		let transport: ms.PlainTransport | undefined;
		try {
			const router = await placement.entry.router;
			transport = await router.createPlainTransport({
				listenIp: options.listenIp,
				rtcpMux: options.remote.rtcpPort === undefined,
				comedia: false,
				enableSrtp: options.enableSrtp ?? false,
			});
			await transport.connect({
				ip: options.remote.ip,
				port: options.remote.port,
				...(options.remote.rtcpPort !== undefined ? { rtcpPort: options.remote.rtcpPort } : {}),
				// The sink counts packets without decrypting; any key of the right length does.
				...(options.enableSrtp ? { srtpParameters: { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: Buffer.alloc(30, 7).toString('base64') } } : {}),
			});
			const consumers: ms.Consumer[] = [];
			for (const track of tracks) {
				const producer = await fanOut.pipedProducer(placement.entry, track);
				consumers.push(await transport.consume({ producerId: producer.id, rtpCapabilities: plainReceiverCapabilities(router.rtpCapabilities) }));
			}
			return new Viewer(fanOut, strip(placement), transport, consumers, logger);
		} catch (error) {
			transport?.close();
			fanOut.release(placement);
			throw error;
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

	close(reason: ViewerCloseReason = 'closed'): void {
		this.#end(reason);
	}

	#end(reason: ViewerCloseReason): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#transport.close();
		this.#fanOut.release(this.#placement);
		this.emit('@close', reason);
		this.emit('close', reason);
		this.removeAllListeners();
	}
}

function strip(placement: ViewerPlacement & { entry: ViewerRouter; worker: ms.Worker }): ViewerPlacement & { worker: ms.Worker } {
	const { entry: _entry, ...rest } = placement;
	return rest;
}

async function watchKeyframeRequests(consumer: ms.Consumer, options: ViewerTransportOptions): Promise<void> {
	const count = options.onKeyframeRequest;
	if (consumer.kind !== 'video' || !count) return;
	await consumer.enableTraceEvent(['pli', 'fir']);
	consumer.on('trace', (trace) => {
		if (trace.type === 'pli' || trace.type === 'fir') count();
	});
}

async function createTransport(router: ms.Router, options: ViewerTransportOptions): Promise<ms.WebRtcTransport> {
	return router.createWebRtcTransport({
		listenIps: options.listenIps,
		enableUdp: true,
		enableTcp: true,
		preferUdp: true,
		initialAvailableOutgoingBitrate: options.initialAvailableOutgoingBitrate,
	});
}
