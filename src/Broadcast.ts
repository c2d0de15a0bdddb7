import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { Audience } from './broadcast/Audience.js';
import type { PipeIngest } from './broadcast/ingest/pipe.js';
import type { Publication } from './broadcast/ingest/publication.js';
import type { RtpIngestEndpoint } from './broadcast/ingest/rtp.js';
import { KeyframeCounter } from './broadcast/KeyframeCounter.js';
import { Pipeline } from './broadcast/Pipeline.js';
import type { BroadcastContext, BroadcastEvents, BroadcastStats } from './broadcast/types.js';
import { ClosedError, ConflictError, InvalidOptionError, NotFoundError } from './errors.js';
import type { FanOut } from './fanout/FanOut.js';
import type { RtpStreamDescription } from './ingest/rtpDescription.js';
import type { Logger } from './logger.js';
import type { BroadcastOptions } from './options.js';
import type { TrackReencoder } from './reencoder/TrackReencoder.js';
import { capabilitiesPlan, offerPlan, plainPlan, type PlainViewerOptions } from './viewers/joinPlans.js';
import type { Viewer, ViewerTransportOptions } from './viewers/Viewer.js';

export type { BroadcastContext, BroadcastEvents, BroadcastStats } from './broadcast/types.js';
export type { KeyframeRequestStats } from './broadcast/KeyframeCounter.js';
export type { RtpIngestEndpoint, PipeIngest, Publication };

/**
 * One broadcast, a front over its owners: the pipeline (the ingest router and
 * its sources, one owner per protocol; the encoder router and re-encoders)
 * and the audience (fan-out and viewers). Media flows one way: ingest →
 * encoder → published tracks → audience → fan-out → viewer. The broadcast is the one listener of worker death: it
 * tells the pipeline, which replaces what stood on the dead worker, and the
 * audience, which drops the viewers that depended on it.
 */
export class Broadcast extends EventEmitter<BroadcastEvents> {
	readonly id: string;
	readonly options: BroadcastOptions;
	readonly #context: BroadcastContext;
	readonly #logger: Logger;
	readonly #keyframes = new KeyframeCounter();
	readonly #audience: Audience;
	#pipeline!: Pipeline;
	#closed = false;
	/** The simulcast layer ceiling (options.video.maxLayer, changed through setMaxLayer). */
	#maxLayer: number;
	readonly #onWorkerDied = ({ index }: { index: number }): void => this.#workerDied(index);

	private constructor(options: BroadcastOptions, context: BroadcastContext) {
		super();
		this.id = options.id ?? randomUUID();
		this.options = options;
		this.#context = context;
		this.#logger = context.logger.child({ module: 'Broadcast', broadcastId: this.id });
		const { pool, budget, workerConsumers } = context;
		this.#maxLayer = options.video.maxLayer;
		this.#audience = new Audience({ broadcastId: this.id, pool, budget, workerConsumers, keyframes: this.#keyframes, maxLayer: () => this.#maxLayer, logger: context.logger });
		this.#audience.on('viewerjoined', (viewer) => this.emit('viewerjoined', viewer));
		this.#audience.on('viewerleft', (event) => this.emit('viewerleft', event));
		context.pool.on('workerdied', this.#onWorkerDied);
	}

	static async create(options: BroadcastOptions, context: BroadcastContext): Promise<Broadcast> {
		const broadcast = new Broadcast(options, context);
		try {
			const pipeline = await Pipeline.create({ broadcastId: broadcast.id, broadcast: options, context, keyframes: broadcast.#keyframes, logger: broadcast.#logger });
			broadcast.#pipeline = pipeline;
			pipeline.on('tracks', () => broadcast.#audience.setTracks(pipeline.tracks));
			pipeline.on('sourceclosed', (event) => broadcast.emit('sourceclosed', event));
			pipeline.on('reencoderrestarted', (event) => broadcast.emit('reencoderrestarted', event));
			pipeline.on('rebuilt', (event) => broadcast.emit('rebuilt', event));
			pipeline.on('rebuildfailed', (event) => {
				broadcast.emit('rebuildfailed', event);
				void broadcast.close();
			});
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
		return this.#pipeline.ingest.router;
	}

	get encoderRouter(): ms.Router {
		return this.#pipeline.encoder.encoderRouter;
	}

	get fanOut(): FanOut {
		return this.#audience.fanOut;
	}

	get viewers(): ReadonlyMap<string, Viewer> {
		return this.#audience.viewers;
	}

	/**
	 * True when viewers can join and get every track the broadcast will have: at
	 * least one track is published, no publisher is still setting sources up, and
	 * every source has its published track. A viewer that joined while the audio
	 * was published but the video re-encoder was still starting would otherwise
	 * get an audio-only session for good.
	 */
	get live(): boolean {
		const tracks = this.#audience.tracks;
		const ingest = this.#pipeline.ingest;
		if (tracks.length === 0 || ingest.settingUp) return false;
		return ingest.producers.every((producer) => tracks.some((track) => track.kind === producer.kind));
	}

	/** The source producer of a kind (on the ingest router), if any. */
	source(kind: ms.MediaKind): ms.Producer | undefined {
		return this.#pipeline.ingest.source(kind);
	}

	reencoder(kind: ms.MediaKind): TrackReencoder | undefined {
		return this.#pipeline.encoder.reencoder(kind);
	}

	/** Attaches a producer the application has on a router of its own (in this process); resolves with the producer on the ingest router. */
	async attach(app: { producer: ms.Producer; router: ms.Router }): Promise<ms.Producer> {
		return (await this.#ready()).attach(app);
	}

	/** Opens a PlainTransport per stream for an external encoder sending plain RTP (one description per stream, or an SDP with a=ssrc lines). */
	async ingestRtp(input: RtpStreamDescription | RtpStreamDescription[] | { sdp: string }): Promise<RtpIngestEndpoint[]> {
		return (await this.#ready()).ingestRtp(input);
	}

	/** Publishes from a WebRTC peer (WHIP, a browser, werift) given its SDP offer; resolves with the answer. */
	async publish(offerSdp: string): Promise<Publication> {
		return (await this.#ready()).publish(offerSdp);
	}

	/** The relay's half of pipeToRouter() across hosts (see pipeToRelay() for the upstream half). */
	async openPipeIngest(remote: { ip: string; port: number }): Promise<PipeIngest> {
		return (await this.#ready()).openPipeIngest(remote);
	}

	/**
	 * Adds a viewer from a WebRTC SDP offer (WHEP, werift, a browser); the answer carries the viewer's own payload types.
	 * `maxLayer`: the highest layer of the simulcast ladder this viewer wants (0: the lowest); default: as high as the broadcast allows.
	 */
	async addViewer(offerSdp: string, options: { maxLayer?: number } = {}): Promise<{ viewer: Viewer; answer: string }> {
		if (options.maxLayer !== undefined) this.#checkLayer(options.maxLayer, 'maxLayer');
		await this.#ready();
		const { viewer, result } = await this.#audience.join(offerPlan(offerSdp, this.#audience.tracks, this.#viewerTransport(), this.#logger), { ...(options.maxLayer !== undefined ? { preferred: options.maxLayer } : {}) });
		return { viewer, answer: result };
	}

	/** Layers of the re-encoded video's simulcast ladder (1: a single rendition, or baseline mode). */
	get layerCount(): number {
		// What viewers consume decides: the re-encoded ladder, or (baseline mode, a cluster edge's
		// feed) a source that is simulcast itself.
		const video = this.#audience.tracks.find((track) => track.kind === 'video');
		const encodings = video?.producer.rtpParameters.encodings?.length;
		return encodings ?? (this.options.mode === 'relay' ? this.options.video.ladder.length : 1);
	}

	/** The highest layer any viewer gets now (0: the lowest). */
	get maxLayer(): number {
		return this.#maxLayer;
	}

	/** Sets the broadcast's layer ceiling: viewers above it are moved down at once, viewers' own maxima stay below it. */
	async setMaxLayer(layer: number): Promise<void> {
		this.#checkLayer(layer, 'maxLayer');
		this.#maxLayer = layer;
		await this.#audience.setLayerCeiling(layer);
	}

	/** A viewer's own maximum layer (undefined: no limit of its own). */
	async setViewerMaxLayer(viewerId: string, layer: number | undefined): Promise<void> {
		const viewer = this.#audience.viewers.get(viewerId);
		if (!viewer) throw new NotFoundError(`no viewer "${viewerId}" in broadcast "${this.id}" (it left, or never joined)`);
		if (layer !== undefined) this.#checkLayer(layer, 'maxLayer');
		if (!viewer.layers) throw new ConflictError(`viewer "${viewerId}" receives a single rendition: broadcast "${this.id}" has no simulcast ladder`);
		await viewer.layers.setPreferred(layer);
	}

	#checkLayer(layer: number, name: string): void {
		const top = this.layerCount - 1;
		if (!Number.isInteger(layer) || layer < 0 || layer > top) {
			throw new InvalidOptionError(`${name} must be a layer of broadcast "${this.id}": 0 (lowest) to ${top}, not ${String(layer)}`);
		}
	}

	/** Adds a plain-RTP viewer sending to `remote` (load-test sinks with SRTP, measuring decoders without). */
	async addPlainViewer(options: PlainViewerOptions): Promise<Viewer> {
		await this.#ready();
		const listenIp = this.#context.transport.listenIps[0]!;
		return (await this.#audience.join(plainPlan({ ...options, listenIp }, this.#audience.tracks))).viewer;
	}

	/** Adds a mediasoup-client style viewer from its RTP capabilities (consumers start paused). */
	async addViewerWithCapabilities(rtpCapabilities: ms.RtpCapabilities): Promise<Viewer> {
		await this.#ready();
		return (await this.#audience.join(capabilitiesPlan(rtpCapabilities, this.#audience.tracks, this.#viewerTransport()))).viewer;
	}

	/** Waits out a rebuild; throws ClosedError once closed. */
	/** Viewer transport options; a connected viewer with no video for a GOP and a second asks again for a keyframe. */
	#viewerTransport(): ViewerTransportOptions {
		return { ...this.#context.transport, firstKeyframeStallMs: this.options.video.keyframeIntervalSeconds * 1000 + 1000 };
	}

	async #ready(): Promise<Pipeline['ingest']> {
		if (this.#closed) throw new ClosedError(`broadcast ${this.id}`);
		await this.#pipeline.rebuilding;
		if (this.#closed) throw new ClosedError(`broadcast ${this.id}`);
		return this.#pipeline.ingest;
	}

	get stats(): BroadcastStats {
		const routers = this.#audience.fanOut.routers();
		return {
			id: this.id,
			mode: this.options.mode,
			live: this.live,
			viewers: this.#audience.viewers.size,
			keyframeRequests: this.#keyframes.counts,
			reencoders: this.#pipeline?.encoder.reencoderStats ?? [],
			layers: {
				ladder: this.options.mode === 'relay' ? this.options.video.ladder : [],
				maxLayer: this.#maxLayer,
				...this.#audience.layerStats(this.layerCount),
			},
			routers,
			workersInUse: [...new Set(routers.map((r) => r.workerIndex))].sort(),
			broadcasterBitrate: {},
			ingest: { workerIndex: this.#pipeline?.ingest.workerIndex ?? -1, encoderWorkerIndex: this.#pipeline?.encoder.workerIndex ?? -1 },
		};
	}

	/** Stats including the broadcaster's bitrate, which needs a round trip to the workers. */
	async getStats(): Promise<BroadcastStats> {
		const stats = this.stats;
		for (const producer of this.#pipeline.ingest.producers) {
			if (producer.closed) continue;
			const producerStats = await producer.getStats().catch(() => []);
			stats.broadcasterBitrate[producer.kind] = producerStats.reduce((sum, s) => sum + (s.bitrate ?? 0), 0);
		}
		return stats;
	}

	/** The one listener of worker death: tells the pipeline and the audience, and reports the viewers lost. */
	#workerDied(workerIndex: number): void {
		// Before create() finished there is nothing to tell: the routers it was making fail and create() throws.
		if (this.#closed || !this.#pipeline) return;
		// Every viewer consumes the pipeline's tracks: when they go, every viewer goes.
		const lost = this.#pipeline.workerDied(workerIndex) ? this.#audience.dropAll() : this.#audience.dropWorker(workerIndex);
		if (lost.length > 0) this.emit('viewerslost', { workerIndex, viewerIds: lost });
	}

	/** Ends the broadcast: viewers, fan-out, re-encoders (FFmpeg and ports), ingest transports and routers. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#context.pool.off('workerdied', this.#onWorkerDied);
		this.#audience.close();
		await this.#pipeline?.close();
		this.emit('@close');
		this.removeAllListeners();
	}
}
