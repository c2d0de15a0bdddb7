import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { ConflictError, InvalidOptionError, ProducerClosedError } from '../errors.js';
import { descriptionsFromSdp, rtpParametersFromDescription, type RtpStreamDescription } from '../ingest/rtpDescription.js';
import type { Logger } from '../logger.js';
import type { WorkerPool } from '../workers/WorkerPool.js';
import { attachProducer } from './ingest/attached.js';
import type { IngestSource } from './ingest/IngestSource.js';
import { openPipeIngest, type PipeIngest } from './ingest/pipe.js';
import { openPublication, readPublicationOffer, type Publication } from './ingest/publication.js';
import { openRtpStream, type RtpIngestEndpoint } from './ingest/rtp.js';
import type { KeyframeCounter } from './KeyframeCounter.js';
import { openBroadcastRouter } from './types.js';

/** Where the ingest hands its sources: the pipeline (through the broadcast, which may replace it). */
export interface IngestDownstream {
	/** Feeds a source producer on; throws if it cannot (the source is then dropped). */
	add(producer: ms.Producer): Promise<void>;
	remove(kind: ms.MediaKind): void;
}

export interface IngestOptions {
	broadcastId: string;
	pool: WorkerPool;
	workerIndex: number;
	listenIp: ms.TransportListenIp;
	peerTimeoutMs: number;
	/** A WebRTC publisher that has sent nothing this long gives way to a new publish of its kinds, ms; 0: never. */
	silentPublisherMs: number;
	downstream: IngestDownstream;
	keyframes: KeyframeCounter;
	logger: Logger;
}

export interface IngestEvents {
	/** A source's producer closed while its router lives (its sender went away). */
	sourceclosed: [{ kind: ms.MediaKind; reason: string }];
}

/**
 * The ingest router and the sources on it, at most one per kind. Each source
 * comes from the owner of its protocol (src/broadcast/ingest/); the ingest
 * holds the claims that stop two publishers racing for one kind, watches each
 * source's producer and feeds it downstream. It is replaced whole
 * when its worker dies (retire(), then reattach() on the new one).
 */
export class Ingest extends EventEmitter<IngestEvents> {
	readonly workerIndex: number;
	readonly router: ms.Router;
	readonly #options: IngestOptions;
	readonly #sources = new Map<ms.MediaKind, IngestSource>();
	readonly #claims = new Set<ms.MediaKind>();
	#closed = false;

	private constructor(options: IngestOptions, router: ms.Router) {
		super();
		this.#options = options;
		this.workerIndex = options.workerIndex;
		this.router = router;
	}

	static async create(options: IngestOptions): Promise<Ingest> {
		return new Ingest(options, await openBroadcastRouter(options.pool, { ...options, tier: 'ingest' }));
	}

	/** True once closed, or once the router is gone with its worker. */
	get closed(): boolean {
		return this.#closed || this.router.closed;
	}

	source(kind: ms.MediaKind): ms.Producer | undefined {
		return this.#sources.get(kind)?.producer;
	}

	get producers(): ms.Producer[] {
		return [...this.#sources.values()].map((s) => s.producer);
	}

	/** True while a publisher's sources are being set up (some may be attached already, others not yet). */
	get settingUp(): boolean {
		return this.#claims.size > 0;
	}

	async attach({ producer, router }: { producer: ms.Producer; router: ms.Router }): Promise<ms.Producer> {
		if (!producer || typeof producer.id !== 'string' || !router || typeof router.pipeToRouter !== 'function') {
			throw new InvalidOptionError('attach() takes { producer, router }: a mediasoup Producer and the Router it lives on');
		}
		if (producer.closed) throw new ProducerClosedError(`producer ${producer.id} is closed; attach a live producer`);
		return this.#withClaim([producer.kind], async () => (await this.#adopt(await attachProducer({ producer, router }, this.router))).producer);
	}

	async ingestRtp(input: RtpStreamDescription | RtpStreamDescription[] | { sdp: string }): Promise<RtpIngestEndpoint[]> {
		const descriptions = 'sdp' in input ? descriptionsFromSdp(input.sdp) : Array.isArray(input) ? input : [input];
		const streams = descriptions.map((d) => rtpParametersFromDescription(d));
		return this.#withClaim(
			streams.map((s) => s.kind),
			async () => {
				const endpoints: RtpIngestEndpoint[] = [];
				for (const stream of streams) {
					const { source, endpoint } = await openRtpStream(this.router, stream, this.#transportOptions());
					await this.#adopt(source);
					endpoints.push(endpoint);
				}
				return endpoints;
			},
		);
	}

	async publish(offerSdp: string): Promise<Publication> {
		const offer = readPublicationOffer(offerSdp);
		return this.#withClaim(offer.kinds, () =>
			openPublication(this.router, offer, {
				...this.#transportOptions(),
				peerTimeoutMs: this.#options.peerTimeoutMs,
				logger: this.#options.logger,
				adopt: async (source) => void (await this.#adopt(source)),
			}),
		);
	}

	async openPipeIngest(remote: { ip: string; port: number }): Promise<PipeIngest> {
		if (typeof remote?.ip !== 'string' || !Number.isInteger(remote?.port) || remote.port < 1 || remote.port > 65535) {
			throw new InvalidOptionError('pipe ingest needs { ip, port } of the upstream PipeTransport');
		}
		return openPipeIngest(this.router, remote, {
			...this.#transportOptions(),
			adopt: (kind, create) => this.#withClaim([kind], async () => this.#adopt(await create())),
		});
	}

	#transportOptions() {
		return { broadcastId: this.#options.broadcastId, listenIp: this.#options.listenIp };
	}

	/**
	 * Reserves kinds while `open` sets their sources up, so two publishers racing
	 * cannot both get in. A kind already taken is a conflict, unless every source
	 * in the way is a publisher silent for silentPublisherMs: one that vanished
	 * (network gone, browser killed) and would otherwise hold the broadcast until
	 * its peer timeout. Those are closed, and the new publisher takes their place.
	 */
	async #withClaim<T>(kinds: ms.MediaKind[], open: () => Promise<T>): Promise<T> {
		if (this.closed) throw new ConflictError(`broadcast ${this.#options.broadcastId} is rebuilding its ingest; publish again in a moment`);
		const inTheWay = kinds.filter((kind) => this.#sources.has(kind) || this.#claims.has(kind));
		if (inTheWay.length > 0) this.#replaceSilent(inTheWay);
		for (const kind of kinds) this.#claims.add(kind);
		try {
			return await open();
		} finally {
			for (const kind of kinds) this.#claims.delete(kind);
		}
	}

	/** Closes the sources of `kinds` if every one is a silent publisher; otherwise throws ConflictError. */
	#replaceSilent(kinds: ms.MediaKind[]): void {
		const bound = this.#options.silentPublisherMs;
		const silent = (kind: ms.MediaKind): boolean => {
			const silentFor = this.#claims.has(kind) ? undefined : this.#sources.get(kind)?.silentForMs?.();
			return bound > 0 && silentFor !== undefined && silentFor >= bound;
		};
		const busy = kinds.find((kind) => !silent(kind));
		if (busy) {
			throw new ConflictError(`broadcast ${this.#options.broadcastId} already has a ${busy} source that is still sending; close it or create another broadcast`);
		}
		for (const kind of kinds) {
			const source = this.#sources.get(kind)!;
			this.#options.logger.warn({ kind, silentForMs: source.silentForMs!() }, 'publisher silent; a new publisher replaces it');
			// Closing the source closes its producer, which takes it out of #sources (see #adopt).
			source.close();
			if (this.#sources.get(kind) === source) {
				this.#sources.delete(kind);
				this.#options.downstream.remove(kind);
			}
		}
	}

	/** Takes a source from its owner and feeds it downstream; on failure its producer is closed again. */
	async #adopt(source: IngestSource): Promise<IngestSource> {
		const { kind, producer } = source;
		this.#sources.set(kind, source);
		producer.observer.once('close', () => {
			// A router gone with its worker is the broadcast's to handle: it retires this ingest and reattaches the source.
			if (this.#sources.get(kind) !== source || this.closed) return;
			this.#sources.delete(kind);
			this.#options.downstream.remove(kind);
			this.#options.logger.warn({ kind }, 'source closed');
			this.emit('sourceclosed', { kind, reason: 'producer closed' });
		});
		try {
			await this.#options.keyframes.watchProducer(producer, 'forwardedUpstream');
			await this.#options.downstream.add(producer);
		} catch (error) {
			if (this.#sources.get(kind) === source) this.#sources.delete(kind);
			producer.close();
			throw error;
		}
		this.#options.logger.info({ kind, producerId: producer.id }, 'source attached');
		return source;
	}

	/**
	 * This ingest's router is gone with its worker: closes it and returns its
	 * sources, for the ingest that replaces it to reattach().
	 */
	retire(): IngestSource[] {
		const sources = [...this.#sources.values()];
		this.close();
		return sources;
	}

	/**
	 * Takes over a source of a retired ingest: attaches it again here where its
	 * owner can do that. False when its sender must publish again.
	 */
	async reattach(source: IngestSource): Promise<boolean> {
		const again = await source.reattach(this.router);
		if (!again) return false;
		try {
			await this.#withClaim([again.kind], () => this.#adopt(again));
		} catch (error) {
			again.close();
			throw error;
		}
		return true;
	}

	/** Closes every source (and so what its owner made for it) and the router. Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		const sources = [...this.#sources.values()];
		this.#sources.clear();
		for (const source of sources) source.close();
		this.router.close();
		this.removeAllListeners();
	}
}
