import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { routerCodec, type CodecName } from '../codecs.js';
import { CapacityExceededError, ClosedError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { WorkerPool } from '../workers/WorkerPool.js';
import { RouterPipes, type Pipe } from './pipe.js';
import { payloadProfileKey, placeViewer, type PlacementBudget } from './placement.js';

/** A producer viewers consume: the re-encoded one (relay mode) or the broadcaster's (baseline mode). */
export interface PublishedTrack {
	kind: ms.MediaKind;
	codec: CodecName;
	producer: ms.Producer;
	/** The router the producer lives on; pipes start there. */
	router: ms.Router;
}

export interface FanOutOptions {
	broadcastId: string;
	pool: WorkerPool;
	budget: PlacementBudget;
	/** Consumers placed on a worker by every broadcast of the relay, so the per-worker budget holds across them. */
	workerConsumers(workerIndex: number): number;
	/** Called with each pipe consumer made for a published track (the keyframe counter watches them). */
	onPipe?(consumer: ms.Consumer): void;
	/**
	 * How long a viewer router with no viewer left stays open for the next viewer of its
	 * profile before it closes with its pipes, ms; 0 closes it at once. Default 2000.
	 */
	idleRouterLingerMs?: number;
	/**
	 * Most empty viewer routers kept lingering at once; beyond it the longest idle one
	 * closes at once. Default: one per worker.
	 */
	maxIdleRouters?: number;
	logger: Logger;
}

/** See FanOutOptions.idleRouterLingerMs. */
export const IDLE_ROUTER_LINGER_MS = 2000;

/** A viewer-facing router: lives on one worker, made with one viewer payload-type profile. */
export interface ViewerRouter {
	readonly id: string;
	readonly workerIndex: number;
	readonly profile: string;
	readonly payloadTypes: Readonly<Partial<Record<CodecName, number>>>;
	/** Header extension ids by URI its consumers are negotiated with (a WebRTC viewer's own); empty: mediasoup's. */
	readonly extensionIds: Readonly<Record<string, number>>;
	/** Consumers placed on it (reserved before they exist, so concurrent joins never overfill). The one consumer tally. */
	consumers: number;
	/** Times a producer was piped into this router; one per published track. */
	pipesCreated: number;
	readonly router: Promise<ms.Router>;
}

/** Where a viewer was placed. Give it back with FanOut.release(). */
export interface ViewerPlacement {
	routerId: string;
	workerIndex: number;
	workerPid: number;
	/** Consumers reserved for the viewer on its router; release() gives them back. */
	consumers: number;
}

export interface RouterInfo {
	id: string;
	workerIndex: number;
	consumers: number;
	pipes: number;
	profile: string;
}

interface RouterEntry extends ViewerRouter {
	pipes: Map<string, Promise<Pipe>>;
	/** Set while the router has no consumer placed on it: it closes when this fires. */
	idle?: { since: number; timer: NodeJS.Timeout };
}

/**
 * Spreads viewers over viewer-facing routers on every worker and pipes the
 * published tracks into each router the first time a viewer there needs them,
 * exactly once per router and track. The pipe transports are its own
 * (RouterPipes), and close with it.
 *
 * A router whose consumer tally falls to 0 (its last viewer left, or the last
 * join placed on it failed) closes, with its pipes, after a short linger.
 * Routers are made per payload-type profile, so without this a client could
 * leave one router behind per payload-type combination it offers. The tally is
 * taken when a join is placed, before its viewer exists, so a router with a
 * join in flight is never idle, and an idle router leaves the map the moment it
 * is closed: no join can be placed on a router being closed. The linger (rather
 * than closing at once) spares a viewer that reconnects, or the next viewer of
 * a broadcast whose audience comes and goes, a new router, pipe transport pair
 * and pipe; the cap on idle routers keeps a client that churns through profiles
 * from holding more than a few of them open. Every profile is treated alike:
 * the default one ("any" payload type) is only cheaper to keep in the common
 * case, which the linger covers.
 */
export class FanOut {
	readonly #options: FanOutOptions;
	readonly #logger: Logger;
	readonly #routers = new Map<string, RouterEntry>();
	readonly #pipes = new RouterPipes();
	#tracks: PublishedTrack[] = [];
	#closed = false;

	constructor(options: FanOutOptions) {
		this.#options = options;
		this.#logger = options.logger.child({ module: 'FanOut', broadcastId: options.broadcastId });
	}

	get closed(): boolean {
		return this.#closed;
	}

	get tracks(): readonly PublishedTrack[] {
		return this.#tracks;
	}

	/** Sets what viewers consume. Pipes of producers no longer published are forgotten. */
	setTracks(tracks: PublishedTrack[]): void {
		this.#tracks = tracks;
		for (const entry of this.#routers.values()) {
			for (const producerId of entry.pipes.keys()) {
				if (!tracks.some((t) => t.producer.id === producerId)) entry.pipes.delete(producerId);
			}
		}
	}

	/** Consumers placed on viewer routers of this fan-out on one worker. */
	consumersOn(workerIndex: number): number {
		let sum = 0;
		for (const entry of this.#routers.values()) if (entry.workerIndex === workerIndex) sum += entry.consumers;
		return sum;
	}

	/**
	 * Places a viewer that needs `consumers` consumers and receives with the given
	 * payload types per codec. Throws CapacityExceededError when every worker is full.
	 */
	assign(payloadTypes: Partial<Record<CodecName, number>>, consumers: number, extensionIds: Record<string, number> = {}): ViewerPlacement & { entry: ViewerRouter; worker: ms.Worker } {
		if (this.#closed) throw new ClosedError('fan-out');
		const { pool, budget, workerConsumers } = this.#options;
		// A router serves one payload-type and header-extension-id profile: its consumers send with those.
		const profile = payloadProfileKey({
			...Object.fromEntries(this.#tracks.map((t) => [t.codec, payloadTypes[t.codec] ?? 'any'])),
			...Object.fromEntries(Object.entries(extensionIds).map(([uri, id]) => [`ext:${uri}`, id])),
		});
		const decision = placeViewer(
			pool.slots.map((s) => ({ slot: s.index, alive: !s.worker.died && !s.worker.closed, consumers: workerConsumers(s.index) })),
			[...this.#routers.values()].map((r) => ({ id: r.id, slot: r.workerIndex, consumers: r.consumers, profile: r.profile })),
			budget,
			{ consumers, profile },
		);
		if (decision.kind === 'full') {
			throw new CapacityExceededError(
				`no worker has room for ${consumers} more consumers (budget ${budget.consumersPerWorker} per worker, ${budget.consumersPerRouter} per router); add workers or hosts, or raise the budget`,
			);
		}
		const entry = decision.kind === 'existing' ? this.#routers.get(decision.routerId)! : this.#openRouter(decision.slot, profile, payloadTypes, extensionIds);
		entry.consumers += consumers;
		this.#stopIdling(entry);
		const worker = pool.slot(entry.workerIndex).worker;
		return { routerId: entry.id, workerIndex: entry.workerIndex, workerPid: worker.pid, consumers, entry, worker };
	}

	/** Gives back a placement's capacity; a router left with none closes after the linger. Safe after the router is gone. */
	release(placement: ViewerPlacement): void {
		const entry = this.#routers.get(placement.routerId);
		if (!entry) return;
		entry.consumers = Math.max(0, entry.consumers - placement.consumers);
		if (entry.consumers === 0) this.#idle(entry);
	}

	/** A router with a consumer placed on it again is no longer idle. */
	#stopIdling(entry: RouterEntry): void {
		if (!entry.idle) return;
		clearTimeout(entry.idle.timer);
		delete entry.idle;
	}

	/** A router with no consumer left: closes after the linger, or at once when too many are idle. */
	#idle(entry: RouterEntry): void {
		if (this.#closed || entry.idle) return;
		const linger = this.#options.idleRouterLingerMs ?? IDLE_ROUTER_LINGER_MS;
		if (linger <= 0) return this.#closeRouter(entry, 'idle');
		const timer = setTimeout(() => {
			if (entry.consumers === 0) this.#closeRouter(entry, 'idle');
		}, linger);
		timer.unref();
		entry.idle = { since: performance.now(), timer };
		const idle = [...this.#routers.values()].filter((r) => r.idle).sort((a, b) => a.idle!.since - b.idle!.since);
		const max = this.#options.maxIdleRouters ?? this.#options.pool.slots.length;
		for (const oldest of idle.slice(0, Math.max(0, idle.length - max))) this.#closeRouter(oldest, 'too many idle');
	}

	/** Closes one viewer router: mediasoup closes its transports with it, and so the pipes into it. */
	#closeRouter(entry: RouterEntry, why: string): void {
		this.#stopIdling(entry);
		if (this.#routers.get(entry.id) !== entry) return;
		// Out of the map first: from here no join can be placed on it.
		this.#routers.delete(entry.id);
		void entry.router.then((r) => r.close(), () => undefined);
		this.#logger.debug({ routerId: entry.id, workerIndex: entry.workerIndex, profile: entry.profile, why }, 'viewer router closed');
	}

	#openRouter(workerIndex: number, profile: string, payloadTypes: Partial<Record<CodecName, number>>, extensionIds: Record<string, number>): RouterEntry {
		const { worker } = this.#options.pool.slot(workerIndex);
		// Codecs pinned to the viewer's payload types; a track without one takes the router's default.
		const mediaCodecs = this.#tracks.map((t) => routerCodec(t.codec, payloadTypes[t.codec]));
		const id = randomUUID();
		const router = worker
			.createRouter({ mediaCodecs, appData: { broadcastId: this.#options.broadcastId, viewerRouter: id } })
			.then((r) => adoptExtensionIds(r, extensionIds));
		const entry: RouterEntry = { id, workerIndex, profile, payloadTypes, extensionIds, consumers: 0, pipesCreated: 0, router, pipes: new Map() };
		this.#routers.set(id, entry);
		router.then(
			(r) => {
				r.observer.once('close', () => {
					this.#stopIdling(entry);
					if (this.#routers.get(id) === entry) this.#routers.delete(id);
				});
				if (this.#closed) r.close();
			},
			(error: unknown) => {
				this.#logger.error({ err: error, workerIndex }, 'could not create viewer router');
				this.#stopIdling(entry);
				this.#routers.delete(id);
			},
		);
		this.#logger.debug({ routerId: id, workerIndex, profile }, 'viewer router opened');
		return entry;
	}

	/** The producer viewers on `entry` consume for `track`: piped into that router once, on first use. */
	async pipedProducer(entry: ViewerRouter, track: PublishedTrack): Promise<ms.Producer> {
		const own = this.#routers.get(entry.id);
		if (!own) throw new ClosedError(`viewer router ${entry.id}`);
		let piped = own.pipes.get(track.producer.id);
		if (!piped) {
			own.pipesCreated += 1;
			piped = own.router
				.then((router) => this.#pipes.pipe({ producerId: track.producer.id, source: track.router, target: router }))
				.then((pipe) => {
					this.#options.onPipe?.(pipe.consumer);
					return pipe;
				});
			own.pipes.set(track.producer.id, piped);
			piped.catch(() => own.pipes.delete(track.producer.id));
		}
		return (await piped).producer;
	}

	/**
	 * Asks `producerId`'s source for a keyframe on behalf of the viewers on router
	 * `routerId`, through that router's pipe consumer (on the source's router). A
	 * viewer's own request cannot do it while the pipe has carried nothing yet: the
	 * piped producer has no RTP stream to send it on, and mediasoup drops it.
	 */
	async requestKeyFrame(routerId: string, producerId: string): Promise<void> {
		const pipe = await this.#routers.get(routerId)?.pipes.get(producerId)?.catch(() => undefined);
		if (pipe && !pipe.consumer.closed) await pipe.consumer.requestKeyFrame();
	}

	routers(): RouterInfo[] {
		return [...this.#routers.values()].map((r) => ({
			id: r.id,
			workerIndex: r.workerIndex,
			consumers: r.consumers,
			pipes: r.pipesCreated,
			profile: r.profile,
		}));
	}

	/** Forgets the routers of a dead worker (mediasoup closed them with it), and so their consumer tally. */
	dropWorker(workerIndex: number): void {
		const lost = [...this.#routers.values()].filter((r) => r.workerIndex === workerIndex);
		for (const entry of lost) {
			this.#stopIdling(entry);
			this.#routers.delete(entry.id);
		}
		if (lost.length > 0) this.#logger.warn({ workerIndex, routers: lost.length }, 'viewer routers lost with their worker');
	}

	/** Closes every viewer router (and so their pipes, transports and consumers). Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const entry of this.#routers.values()) {
			this.#stopIdling(entry);
			void entry.router.then((r) => r.close(), () => undefined);
		}
		this.#routers.clear();
		this.#pipes.close();
	}
}

/**
 * Gives a viewer router the viewer's header extension ids, before anything is
 * piped into it. mediasoup 3.12 takes a producer's consumable extension ids
 * from its router's capabilities object when the producer is made, and a
 * consumer's from those: so the pipe producers, and the viewers' consumers,
 * carry the viewer's ids (the worker then sends with them: patch 0002).
 * Extensions the viewer did not offer are dropped from the router's list.
 */
function adoptExtensionIds(router: ms.Router, ids: Readonly<Record<string, number>>): ms.Router {
	if (Object.keys(ids).length === 0) return router;
	const capabilities = router.rtpCapabilities;
	capabilities.headerExtensions = (capabilities.headerExtensions ?? []).flatMap((ext) => (ids[ext.uri] !== undefined ? [{ ...ext, preferredId: ids[ext.uri]! }] : []));
	return router;
}
