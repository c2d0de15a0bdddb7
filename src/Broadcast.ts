import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { codecFromMimeType, ingestRouterCodecs, type CodecName } from './codecs.js';
import { ClosedError, ConflictError, InvalidOptionError, InvalidRtpParametersError, ProducerClosedError, UnsupportedCodecError } from './errors.js';
import { FanOut, type PublishedTrack, type RouterInfo } from './fanout/FanOut.js';
import { pipeProducer } from './fanout/pipe.js';
import { producerParametersFromOffer } from './ingest/webrtcOffer.js';
import { buildAnswer, type AnswerSection } from './sdp/buildAnswer.js';
import { parseOffer, sectionsFor, type OfferMedia } from './sdp/parseOffer.js';
import { descriptionsFromSdp, rtpParametersFromDescription, type RtpStreamDescription } from './ingest/rtpDescription.js';
import type { Logger } from './logger.js';
import type { BroadcastOptions } from './options.js';
import type { PortPool } from './ports/PortPool.js';
import { TrackReencoder, type TrackReencoderStats } from './reencoder/TrackReencoder.js';
import { Viewer, type ViewerCloseReason, type ViewerTransportOptions } from './viewers/Viewer.js';
import { watchPeer } from './viewers/watchPeer.js';
import type { WorkerLoad } from './workers/WorkerLoad.js';
import type { WorkerPool } from './workers/WorkerPool.js';

/** Everything a broadcast needs from its relay. */
export interface BroadcastContext {
	pool: WorkerPool;
	load: WorkerLoad;
	ports: PortPool;
	ffmpegPath: string;
	budget: { consumersPerWorker: number; consumersPerRouter: number };
	transport: ViewerTransportOptions;
	restartBackoff: { initialMs: number; maxMs: number };
	/** Picks worker slots for the ingest and encoder routers. */
	pickSlots(): { ingest: number; encoder: number };
	logger: Logger;
}

/** How a source reached the ingest router; kept so the pipeline can be rebuilt after a worker dies. */
type SourceOrigin =
	| { type: 'attach'; producer: ms.Producer; router: ms.Router }
	| { type: 'rtp'; transport: ms.PlainTransport }
	| { type: 'webrtc'; transport: ms.WebRtcTransport }
	| { type: 'pipe'; transport: ms.PipeTransport }
	| { type: 'local' };

interface Source {
	kind: ms.MediaKind;
	codec: CodecName;
	/** The producer on the ingest router. */
	producer: ms.Producer;
	origin: SourceOrigin;
	reencoder?: TrackReencoder;
}

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

/** A WebRTC publisher (WHIP): its transport and producers on the ingest router. Close it to end the publication. */
export interface Publication {
	readonly transport: ms.WebRtcTransport;
	readonly producers: ms.Producer[];
	readonly answer: string;
	close(): void;
}

export interface KeyframeRequestStats {
	/** PLI/FIR that viewers sent (received by their consumers). */
	fromViewers: number;
	/** PLI/FIR that ended at the re-encoded producer instead of going upstream (relay mode: all of fromViewers). */
	absorbed: number;
	/** PLI/FIR the relay sent to the broadcaster (after mediasoup's one-outstanding-request throttle). */
	forwardedUpstream: number;
	/** PLI/FIR the re-encoded producer passed on to FFmpeg, which ignores them (it keyframes on its own clock). */
	toReencoder: number;
}

export interface BroadcastStats {
	id: string;
	mode: BroadcastOptions['mode'];
	live: boolean;
	viewers: number;
	keyframeRequests: KeyframeRequestStats;
	reencoders: TrackReencoderStats[];
	routers: RouterInfo[];
	workersInUse: number[];
	/** Bitrate the broadcaster sends, bit/s, per kind (from mediasoup producer stats). */
	broadcasterBitrate: Partial<Record<ms.MediaKind, number>>;
	ingest: { workerIndex: number; encoderWorkerIndex: number };
}

export interface BroadcastEvents {
	/** Viewers whose worker died. Their transports are gone: reconnect them (they will be placed elsewhere). */
	viewerslost: [{ workerIndex: number; viewerIds: string[] }];
	viewerjoined: [Viewer];
	viewerleft: [{ viewerId: string; reason: ViewerCloseReason }];
	/** The source of `kind` ended (its producer closed, or its ingest worker died and it cannot be re-attached). */
	sourceclosed: [{ kind: ms.MediaKind; reason: string }];
	/** A re-encoder's FFmpeg was restarted. */
	reencoderrestarted: [{ kind: ms.MediaKind; restarts: number }];
	/** The ingest or encoder worker died and the pipeline was rebuilt on live workers. */
	rebuilt: [{ workerIndex: number }];
	'@close': [];
}

/**
 * One broadcast: the broadcaster's producers on an ingest router, a
 * re-encoder per track (relay mode) producing onto an encoder router, and a
 * fan-out of viewer routers over every worker.
 */
export class Broadcast extends EventEmitter<BroadcastEvents> {
	readonly id: string;
	readonly options: BroadcastOptions;
	readonly #context: BroadcastContext;
	readonly #logger: Logger;
	readonly #sources = new Map<ms.MediaKind, Source>();
	readonly #viewers = new Map<string, Viewer>();
	readonly #lostViewers = new Map<number, string[]>();
	readonly #keyframes: KeyframeRequestStats = { fromViewers: 0, absorbed: 0, forwardedUpstream: 0, toReencoder: 0 };
	readonly #watched = new WeakSet<ms.Producer>();
	readonly #claims = new Set<ms.MediaKind>();
	readonly #viewerTransport: ViewerTransportOptions;
	#fanOut: FanOut;
	#ingestRouter!: ms.Router;
	#encoderRouter!: ms.Router;
	#slots!: { ingest: number; encoder: number };
	#rebuilding?: Promise<void>;
	#closed = false;
	readonly #onWorkerDied: (event: { index: number }) => void;

	private constructor(options: BroadcastOptions, context: BroadcastContext) {
		super();
		this.id = options.id ?? randomUUID();
		this.options = options;
		this.#context = context;
		this.#logger = context.logger.child({ module: 'Broadcast', broadcastId: this.id });
		this.#viewerTransport = {
			...context.transport,
			onKeyframeRequest: () => {
				this.#keyframes.fromViewers += 1;
				if (this.#sources.get('video')?.reencoder) this.#keyframes.absorbed += 1;
			},
		};
		this.#fanOut = this.#newFanOut();
		this.#onWorkerDied = ({ index }) => this.#workerDied(index);
		context.pool.on('workerdied', this.#onWorkerDied);
	}

	static async create(options: BroadcastOptions, context: BroadcastContext): Promise<Broadcast> {
		const broadcast = new Broadcast(options, context);
		try {
			await broadcast.#openRouters();
		} catch (error) {
			await broadcast.close();
			throw error;
		}
		return broadcast;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** The router broadcasters' producers live on. An in-process app may create its producer here directly. */
	get ingestRouter(): ms.Router {
		return this.#ingestRouter;
	}

	get encoderRouter(): ms.Router {
		return this.#encoderRouter;
	}

	get fanOut(): FanOut {
		return this.#fanOut;
	}

	get viewers(): ReadonlyMap<string, Viewer> {
		return this.#viewers;
	}

	/** True once at least one track is published to viewers. */
	get live(): boolean {
		return this.#fanOut.tracks.length > 0;
	}

	/** The source producer of a kind (on the ingest router), if any. */
	source(kind: ms.MediaKind): ms.Producer | undefined {
		return this.#sources.get(kind)?.producer;
	}

	reencoder(kind: ms.MediaKind): TrackReencoder | undefined {
		return this.#sources.get(kind)?.reencoder;
	}

	async #openRouters(): Promise<void> {
		this.#slots = this.#context.pickSlots();
		this.#ingestRouter = await this.#openRouter(this.#slots.ingest, 'ingest');
		this.#encoderRouter = await this.#openRouter(this.#slots.encoder, 'encoder');
	}

	async #openRouter(slot: number, tier: 'ingest' | 'encoder'): Promise<ms.Router> {
		return this.#context.pool.slot(slot).worker.createRouter({
			mediaCodecs: ingestRouterCodecs(),
			appData: { broadcastId: this.id, tier },
		});
	}

	#newFanOut(): FanOut {
		const fanOut = new FanOut({
			broadcastId: this.id,
			pool: this.#context.pool,
			load: this.#context.load,
			budget: this.#context.budget,
			logger: this.#context.logger,
		});
		return fanOut;
	}

	#assertOpen(): void {
		if (this.#closed) throw new ClosedError(`broadcast ${this.id}`);
	}

	#assertKindFree(kind: ms.MediaKind): void {
		if (this.#sources.has(kind) || this.#claims.has(kind)) {
			throw new ConflictError(`broadcast ${this.id} already has a ${kind} source; close it or create another broadcast`);
		}
	}

	/** Reserves kinds for a source being set up, so two publishers racing cannot both get in. */
	#claim(kinds: ms.MediaKind[]): () => void {
		for (const kind of kinds) this.#assertKindFree(kind);
		for (const kind of kinds) this.#claims.add(kind);
		return () => {
			for (const kind of kinds) this.#claims.delete(kind);
		};
	}

	/**
	 * Attaches a producer the application already has, on a router of its own
	 * (in this process): it is piped into the ingest router and feeds the
	 * re-encoder (relay mode) or the viewers directly (baseline mode).
	 */
	async attach({ producer, router }: { producer: ms.Producer; router: ms.Router }): Promise<ms.Producer> {
		this.#assertOpen();
		if (!producer || typeof producer.id !== 'string' || !router || typeof router.pipeToRouter !== 'function') {
			throw new InvalidOptionError('attach() takes { producer, router }: a mediasoup Producer and the Router it lives on');
		}
		if (producer.closed) throw new ProducerClosedError(`producer ${producer.id} is closed; attach a live producer`);
		const release = this.#claim([producer.kind]);
		try {
			if (router.id === this.#ingestRouter.id) {
				await this.#addSource(producer, { type: 'local' });
				return producer;
			}
			const ingestProducer = await pipeProducer({ producerId: producer.id, source: router, target: this.#ingestRouter });
			try {
				await this.#addSource(ingestProducer, { type: 'attach', producer, router });
			} catch (error) {
				ingestProducer.close();
				throw error;
			}
			return ingestProducer;
		} finally {
			release();
		}
	}

	/**
	 * Opens a PlainTransport for an external encoder sending plain RTP (comedia:
	 * the relay learns the sender's address from its first packet). Give one
	 * description per stream, or an SDP with a=ssrc lines.
	 */
	async ingestRtp(input: RtpStreamDescription | RtpStreamDescription[] | { sdp: string }): Promise<RtpIngestEndpoint[]> {
		this.#assertOpen();
		const descriptions = 'sdp' in input ? descriptionsFromSdp(input.sdp) : Array.isArray(input) ? input : [input];
		const parsed = descriptions.map((d) => rtpParametersFromDescription(d));
		const release = this.#claim(parsed.map((p) => p.kind));
		try {
			return await this.#openRtpIngest(parsed);
		} finally {
			release();
		}
	}

	async #openRtpIngest(parsed: ReturnType<typeof rtpParametersFromDescription>[]): Promise<RtpIngestEndpoint[]> {
		const endpoints: RtpIngestEndpoint[] = [];
		for (const { kind, codec, rtpParameters } of parsed) {
			const transport = await this.#ingestRouter.createPlainTransport({
				listenIp: this.#context.transport.listenIps[0]!,
				rtcpMux: false,
				comedia: true,
				appData: { broadcastId: this.id, tier: 'rtp-ingest' },
			});
			try {
				const producer = await transport.produce({ kind, rtpParameters });
				producer.observer.once('close', () => transport.close());
				await this.#addSource(producer, { type: 'rtp', transport });
				const listen = this.#context.transport.listenIps[0]!;
				endpoints.push({
					kind,
					codec,
					producerId: producer.id,
					ip: listen.announcedIp ?? transport.tuple.localIp,
					port: transport.tuple.localPort,
					rtcpPort: transport.rtcpTuple!.localPort,
					rtpParameters: producer.rtpParameters,
				});
			} catch (error) {
				transport.close();
				throw error;
			}
		}
		return endpoints;
	}

	/**
	 * Publishes from a WebRTC peer (WHIP, a browser, werift) given its SDP offer:
	 * a WebRtcTransport on the ingest router and a producer per sending section.
	 * Resolves with the answer; on any failure nothing is left behind.
	 */
	async publish(offerSdp: string): Promise<Publication> {
		this.#assertOpen();
		const offer = parseOffer(offerSdp);
		const sections = sectionsFor(offer.media, 'send');
		if (!sections.has('video')) throw new UnsupportedCodecError('the offer sends no video; publish a video track (VP8 or H264)');
		const parsed = [...sections.values()].map((section) => ({ section, ...producerParametersFromOffer(section) }));
		const release = this.#claim(parsed.map(({ section }) => section.kind));
		try {
			return await this.#openPublication(offer, parsed);
		} finally {
			release();
		}
	}

	async #openPublication(
		offer: ReturnType<typeof parseOffer>,
		parsed: Array<{ section: OfferMedia; rtpParameters: ms.RtpParameters }>,
	): Promise<Publication> {
		const listen = this.#context.transport.listenIps;
		const transport = await this.#ingestRouter.createWebRtcTransport({
			listenIps: listen,
			enableUdp: true,
			enableTcp: true,
			preferUdp: true,
			appData: { broadcastId: this.id, tier: 'webrtc-ingest' },
		});
		const producers: ms.Producer[] = [];
		try {
			const answerSections = new Map<string, AnswerSection>();
			for (const { section, rtpParameters } of parsed) {
				const producer = await transport.produce({ kind: section.kind, rtpParameters });
				producers.push(producer);
				answerSections.set(section.mid, { direction: 'recvonly', rtpParameters: producer.rtpParameters });
			}
			await transport.connect({ dtlsParameters: { ...offer.dtlsParameters, role: 'server' } });
			for (const producer of producers) await this.#addSource(producer, { type: 'webrtc', transport });
			const answer = buildAnswer(offer, transport, answerSections);
			transport.observer.once('close', () => this.#logger.info('publisher transport closed'));
			watchPeer(transport, this.#context.transport.peerTimeoutMs, (reason) => {
				this.#logger.warn({ reason }, 'publisher gone; ending its publication');
				transport.close();
			});
			return { transport, producers, answer, close: () => transport.close() };
		} catch (error) {
			for (const producer of producers) {
				const source = this.#sources.get(producer.kind);
				if (source?.producer === producer) this.#sourceClosed(source, 'publish failed');
			}
			transport.close();
			throw error;
		}
	}

	/**
	 * The relay's half of pipeToRouter() across hosts: a PipeTransport on the
	 * ingest router connected to the upstream app's PipeTransport at `remote`.
	 * The upstream side then consumes its producer and hands the consumer's RTP
	 * parameters to produce() (see pipeToRelay() for the upstream half).
	 */
	async openPipeIngest(remote: { ip: string; port: number }): Promise<PipeIngest> {
		this.#assertOpen();
		if (typeof remote?.ip !== 'string' || !Number.isInteger(remote?.port) || remote.port < 1 || remote.port > 65535) {
			throw new InvalidOptionError('pipe ingest needs { ip, port } of the upstream PipeTransport');
		}
		const listen = this.#context.transport.listenIps[0]!;
		const transport = await this.#ingestRouter.createPipeTransport({ listenIp: listen, appData: { broadcastId: this.id, tier: 'pipe-ingest' } });
		try {
			await transport.connect({ ip: remote.ip, port: remote.port });
		} catch (error) {
			transport.close();
			throw new InvalidOptionError(`cannot connect the pipe to ${remote.ip}:${remote.port}: ${(error as Error).message}`);
		}
		return {
			transport,
			ip: listen.announcedIp ?? transport.tuple.localIp,
			port: transport.tuple.localPort,
			produce: async ({ kind, rtpParameters, paused }) => {
				this.#assertOpen();
				const release = this.#claim([kind]);
				try {
					let producer: ms.Producer;
					try {
						producer = await transport.produce({ kind, rtpParameters, paused: paused ?? false });
					} catch (error) {
						throw new InvalidRtpParametersError(`the pipe producer's RTP parameters are not valid: ${(error as Error).message}`, { cause: error });
					}
					try {
						await this.#addSource(producer, { type: 'pipe', transport });
					} catch (error) {
						producer.close();
						throw error;
					}
					return producer;
				} finally {
					release();
				}
			},
			close: () => transport.close(),
		};
	}

	async #addSource(producer: ms.Producer, origin: SourceOrigin): Promise<void> {
		const kind = producer.kind;
		const codec = codecFromMimeType(producer.rtpParameters.codecs[0]!.mimeType);
		const source: Source = { kind, codec, producer, origin };
		this.#sources.set(kind, source);
		if (!this.#watched.has(producer)) {
			// Once per producer: a rebuilt pipeline keeps counting on the same listeners.
			this.#watched.add(producer);
			if (kind === 'video') {
				await producer.enableTraceEvent(['pli', 'fir']);
				producer.on('trace', (trace) => {
					if (trace.type === 'pli' || trace.type === 'fir') this.#keyframes.forwardedUpstream += 1;
				});
			}
			producer.observer.once('close', () => {
				const current = this.#sources.get(kind);
				if (current?.producer === producer) this.#sourceClosed(current, 'producer closed');
			});
		}

		const reencode = this.options.mode === 'relay' && (kind === 'video' || this.options.audio.reencode);
		try {
			if (reencode) {
				const reencoder = await TrackReencoder.create({
					source: producer,
					sourceRouter: this.#ingestRouter,
					encoderRouter: this.#encoderRouter,
					ffmpegPath: this.#context.ffmpegPath,
					ports: this.#context.ports,
					...(kind === 'video' ? { video: this.options.video } : { audio: { bitrateKbps: this.options.audio.bitrateKbps } }),
					restartBackoff: this.#context.restartBackoff,
					logger: this.#logger,
				});
				source.reencoder = reencoder;
				reencoder.on('restarted', ({ restarts }) => this.emit('reencoderrestarted', { kind, restarts }));
				if (kind === 'video') {
					await reencoder.producer.enableTraceEvent(['pli', 'fir']);
					reencoder.producer.on('trace', (trace) => {
						if (trace.type === 'pli' || trace.type === 'fir') this.#keyframes.toReencoder += 1;
					});
				}
				const outputCodec: CodecName = kind === 'video' ? this.options.video.codec : 'opus';
				this.#publish(kind, { kind, codec: outputCodec, producer: reencoder.producer, router: this.#encoderRouter });
			} else {
				this.#publish(kind, { kind, codec, producer, router: this.#ingestRouter });
			}
		} catch (error) {
			this.#sources.delete(kind);
			throw error;
		}
		this.#logger.info({ kind, codec, mode: this.options.mode, producerId: producer.id }, 'source attached');
	}

	#publish(kind: ms.MediaKind, track: PublishedTrack): void {
		this.#fanOut.setTracks([...this.#fanOut.tracks.filter((t) => t.kind !== kind), track]);
	}

	#sourceClosed(source: Source, reason: string): void {
		if (this.#sources.get(source.kind) !== source) return;
		this.#sources.delete(source.kind);
		void source.reencoder?.close();
		this.#fanOut.setTracks(this.#fanOut.tracks.filter((t) => t.kind !== source.kind));
		if (source.origin.type === 'rtp') source.origin.transport.close();
		if (!this.#closed) {
			this.#logger.warn({ kind: source.kind, reason }, 'source closed');
			this.emit('sourceclosed', { kind: source.kind, reason });
		}
	}

	/**
	 * Adds a viewer from a WebRTC SDP offer (WHEP, werift, a browser). Resolves
	 * with the viewer and the SDP answer carrying the viewer's own payload types.
	 */
	async addViewer(offerSdp: string): Promise<{ viewer: Viewer; answer: string }> {
		this.#assertOpen();
		await this.#rebuilding;
		const { viewer, answer } = await Viewer.fromOffer(this.#fanOut, offerSdp, this.#viewerTransport, this.#logger);
		this.#track(viewer);
		return { viewer, answer };
	}

	/**
	 * Adds a plain-RTP viewer sending to `remote` (load-test sinks with SRTP,
	 * measuring decoders without). Placed by the fan-out like any viewer.
	 */
	async addPlainViewer(options: { remote: { ip: string; port: number; rtcpPort?: number }; enableSrtp?: boolean; kinds?: ms.MediaKind[] }): Promise<Viewer> {
		this.#assertOpen();
		await this.#rebuilding;
		const viewer = await Viewer.fromPlain(this.#fanOut, { ...options, listenIp: this.#context.transport.listenIps[0]! }, this.#logger);
		this.#track(viewer);
		return viewer;
	}

	/** Adds a mediasoup-client style viewer from its RTP capabilities (consumers start paused). */
	async addViewerWithCapabilities(rtpCapabilities: ms.RtpCapabilities): Promise<Viewer> {
		this.#assertOpen();
		await this.#rebuilding;
		const viewer = await Viewer.fromCapabilities(this.#fanOut, rtpCapabilities, this.#viewerTransport, this.#logger);
		this.#track(viewer);
		return viewer;
	}

	#track(viewer: Viewer): void {
		if (this.#closed) {
			viewer.close('broadcast-closed');
			throw new ClosedError(`broadcast ${this.id}`);
		}
		this.#viewers.set(viewer.id, viewer);
		viewer.once('@close', (reason) => {
			this.#viewers.delete(viewer.id);
			if (reason === 'worker-died') {
				const list = this.#lostViewers.get(viewer.placement.workerIndex) ?? [];
				list.push(viewer.id);
				this.#lostViewers.set(viewer.placement.workerIndex, list);
			}
			this.emit('viewerleft', { viewerId: viewer.id, reason });
		});
		this.emit('viewerjoined', viewer);
	}

	#workerDied(index: number): void {
		if (this.#closed) return;
		const lost = this.#lostViewers.get(index) ?? [];
		this.#lostViewers.delete(index);
		const pipelineLost = index === this.#slots.ingest || index === this.#slots.encoder;
		if (pipelineLost) {
			// Every viewer consumed the pipeline's producers: they all must reconnect.
			for (const viewer of [...this.#viewers.values()]) {
				lost.push(viewer.id);
				viewer.close('worker-died');
			}
		}
		if (lost.length > 0) this.emit('viewerslost', { workerIndex: index, viewerIds: lost });
		if (pipelineLost) {
			this.#rebuilding = this.#rebuild(index).finally(() => {
				this.#rebuilding = undefined;
			});
		}
	}

	/**
	 * The ingest or encoder worker died. Routers lost with it are opened again on
	 * live workers, the re-encoders are rebuilt, and sources are re-attached where
	 * that is possible: an attached producer is piped again; an RTP or WebRTC
	 * source on a dead ingest worker is reported closed, since its sender must
	 * publish to a new address.
	 */
	async #rebuild(index: number): Promise<void> {
		const ingestLost = index === this.#slots.ingest;
		this.#logger.warn({ workerIndex: index, ingestLost }, 'pipeline worker died; rebuilding the broadcast pipeline');
		const sources = [...this.#sources.values()];
		this.#sources.clear();
		this.#fanOut.close();
		this.#fanOut = this.#newFanOut();
		await Promise.all(sources.map((s) => s.reencoder?.close()));
		if (!this.#encoderRouter.closed) this.#encoderRouter.close();
		try {
			const live = this.#context.pickSlots();
			if (ingestLost) {
				if (!this.#ingestRouter.closed) this.#ingestRouter.close();
				this.#slots = live;
				this.#ingestRouter = await this.#openRouter(live.ingest, 'ingest');
			} else {
				// Keep the ingest worker; put the encoder on another live one where there is one.
				const others = this.#context.pool.liveSlots.map((s) => s.index).filter((i) => i !== this.#slots.ingest);
				this.#slots = { ingest: this.#slots.ingest, encoder: others[0] ?? this.#slots.ingest };
			}
			this.#encoderRouter = await this.#openRouter(this.#slots.encoder, 'encoder');
			for (const source of sources) {
				if (!ingestLost && !source.producer.closed) {
					await this.#addSource(source.producer, source.origin);
				} else if (source.origin.type === 'attach' && !source.origin.producer.closed && !source.origin.router.closed) {
					await this.attach({ producer: source.origin.producer, router: source.origin.router });
				} else {
					this.emit('sourceclosed', { kind: source.kind, reason: 'ingest worker died; the encoder must publish again' });
				}
			}
			this.emit('rebuilt', { workerIndex: index });
		} catch (error) {
			this.#logger.error({ err: error }, 'could not rebuild the broadcast pipeline');
		}
	}

	get stats(): BroadcastStats {
		const routers = this.#fanOut.routers();
		const broadcasterBitrate: Partial<Record<ms.MediaKind, number>> = {};
		return {
			id: this.id,
			mode: this.options.mode,
			live: this.live,
			viewers: this.#viewers.size,
			keyframeRequests: { ...this.#keyframes },
			reencoders: [...this.#sources.values()].flatMap((s) => (s.reencoder ? [s.reencoder.stats] : [])),
			routers,
			workersInUse: [...new Set(routers.map((r) => r.workerIndex))].sort(),
			broadcasterBitrate,
			ingest: { workerIndex: this.#slots?.ingest ?? -1, encoderWorkerIndex: this.#slots?.encoder ?? -1 },
		};
	}

	/** Stats including the broadcaster's bitrate, which needs a round trip to the workers. */
	async getStats(): Promise<BroadcastStats> {
		const stats = this.stats;
		for (const source of this.#sources.values()) {
			if (source.producer.closed) continue;
			const producerStats = await source.producer.getStats().catch(() => []);
			stats.broadcasterBitrate[source.kind] = producerStats.reduce((sum, s) => sum + (s.bitrate ?? 0), 0);
		}
		return stats;
	}

	/** Ends the broadcast: viewers, fan-out, re-encoders (FFmpeg and ports), ingest transports and routers. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#context.pool.off('workerdied', this.#onWorkerDied);
		for (const viewer of [...this.#viewers.values()]) viewer.close('broadcast-closed');
		this.#fanOut.close();
		await this.#rebuilding;
		const sources = [...this.#sources.values()];
		this.#sources.clear();
		await Promise.all(sources.map((s) => s.reencoder?.close()));
		for (const source of sources) {
			if (source.origin.type === 'rtp' || source.origin.type === 'webrtc' || source.origin.type === 'pipe') source.origin.transport.close();
			// A pipe producer on our ingest router is ours; the app's own producer is not.
			if (source.origin.type === 'attach') source.producer.close();
		}
		this.#ingestRouter?.close();
		this.#encoderRouter?.close();
		this.emit('@close');
		this.removeAllListeners();
	}
}
