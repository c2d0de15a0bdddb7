import { cpus } from 'node:os';
import { Gauge, type Registry } from 'prom-client';
import type { Broadcast } from '../Broadcast.js';
import { CapacityExceededError, ConflictError, NotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Relay } from '../Relay.js';
import { ClusterStore, type ClusterEvent } from './ClusterStore.js';
import { Edge } from './Edge.js';
import type { EdgeFeed } from './EdgeFeed.js';
import { ClusterUnavailableError } from './errors.js';
import type { ClusterOptions } from './options.js';
import { hasRoom, pickRedirect, pullTree, type NodeBroadcast, type NodeLoad, type NodeRecord, type PullTree } from './placement.js';
import { ServedPulls, type ServedPull } from './ServedPulls.js';

export interface ClusterNodeOptions {
	options: ClusterOptions;
	relay: Relay;
	/** Creates a broadcast within the service's limits (maxBroadcasts). */
	createBroadcast(options: { id: string; mode: 'baseline' }): Promise<Broadcast>;
	/** The cluster's shared tokens: ingest (pipe ingest on other nodes) and admin (their pull API). */
	tokens: { ingest?: string; admin?: string };
	logger: Logger;
}

/** Where a WHEP viewer goes: here (the broadcast is local or now pulled), or to another node. */
export type ViewerPlacement = { kind: 'local' } | { kind: 'redirect'; node: string; url: string };

export interface ClusterView {
	self: string;
	redis: 'up' | 'down';
	nodes: Array<NodeRecord & { self: boolean }>;
	broadcasts: Array<{ id: string; origin: string; edges: Array<{ node: string; upstream?: string; viewers: number; live: boolean }>; tree: PullTree }>;
	/** This node's pulls: served to other edges, and its own as an edge. */
	pulls: { served: Array<{ id: string; broadcast: string; node: string; pipes: number }>; pulling: Array<{ broadcast: string; upstream?: string; origin: string; live: boolean; pipes: number }> };
}

/**
 * This relay as a node of a cluster. Registers itself in Redis with its load
 * under a lease renewed by a heartbeat; holds an origin lease for each
 * broadcast published here; places WHEP viewers (here, pulling the broadcast
 * as an edge, or a redirect to a node with room); serves pulls to other edges;
 * follows other nodes' events (a broadcast ended, an origin moved). While
 * Redis is away it keeps serving what it has and refuses new placements.
 */
export class ClusterNode {
	readonly options: ClusterOptions;
	readonly #relay: Relay;
	readonly #node: ClusterNodeOptions;
	readonly #logger: Logger;
	readonly #store: ClusterStore;
	readonly #served: ServedPulls;
	readonly #edges = new Map<string, Edge>();
	readonly #openingEdges = new Map<string, Promise<Edge>>();
	/** The edges' feeds by key: where upstreams pipe into. */
	readonly #feeds = new Map<string, EdgeFeed>();
	/** Broadcasts whose origin lease this node holds (or means to hold: renewed at each heartbeat). */
	readonly #origins = new Set<string>();
	readonly #abort = new AbortController();
	readonly #startedAt = Date.now();
	#nodes: NodeRecord[] = [];
	#loop?: Promise<void>;
	#cpuTimes = cpuTimes();
	#cpu = 0;
	#heartbeats = 0;
	#heartbeatFailures = 0;
	#redirects = 0;
	/**
	 * Until then a node missing from Redis is not taken for gone: after an outage (a
	 * restarted Redis has lost every lease) the others need a heartbeat to register again.
	 */
	#judgeAfter = 0;
	#closed = false;

	private constructor(node: ClusterNodeOptions, store: ClusterStore) {
		this.options = node.options;
		this.#node = node;
		this.#relay = node.relay;
		this.#logger = node.logger.child({ module: 'ClusterNode', nodeId: node.options.nodeId });
		this.#store = store;
		const { listenIp, announcedIp } = node.relay.options;
		this.#served = new ServedPulls({
			maxPerBroadcast: node.options.maxEdgePulls,
			listenIp: { ip: listenIp, ...(announcedIp ? { announcedIp } : {}) },
			token: node.tokens.ingest,
			logger: this.#logger,
		});
	}

	/** Connects to Redis, registers this node and starts the heartbeat. Throws InvalidOptionError when Redis is unreachable. */
	static async start(node: ClusterNodeOptions): Promise<ClusterNode> {
		const events: { handle?: (event: ClusterEvent) => void; reconnected?: () => void } = {};
		const store = await ClusterStore.connect({
			redisUrl: node.options.redisUrl,
			logger: node.logger,
			onEvent: (event) => events.handle?.(event),
			onReconnect: () => events.reconnected?.(),
		});
		const cluster = new ClusterNode(node, store);
		events.handle = (event) => cluster.#onEvent(event);
		events.reconnected = () => cluster.#graceAfterOutage();
		const relay = node.relay;
		relay.on('broadcastcreated', (broadcast) => cluster.#broadcastCreated(broadcast));
		relay.on('broadcastclosed', ({ id }) => void cluster.#broadcastClosed(id));
		await cluster.#heartbeat();
		cluster.#loop = cluster.#run();
		cluster.#logger.info({ publicUrl: node.options.publicUrl }, 'joined the cluster');
		return cluster;
	}

	get id(): string {
		return this.options.nodeId;
	}

	get redisConnected(): boolean {
		return this.#store.connected;
	}

	// ---- placement -------------------------------------------------------------------------

	/**
	 * Where a WHEP viewer of `broadcastId` goes. `hop`: the request was redirected
	 * here already, so it is served here or refused, never sent on (no loops).
	 */
	async placeViewer(broadcastId: string, hop: boolean): Promise<ViewerPlacement> {
		const room = hasRoom(this.#load());
		const edge = this.#edges.get(broadcastId);
		if (edge && !edge.closed) {
			if (!room) return this.#redirect(broadcastId, hop);
			await edge.ready();
			return { kind: 'local' };
		}
		if (this.#relay.broadcasts.has(broadcastId) && !this.#openingEdges.has(broadcastId)) {
			// The origin, or a broadcast of this node alone.
			return room ? { kind: 'local' } : this.#redirect(broadcastId, hop);
		}
		const opening = this.#openingEdges.get(broadcastId);
		if (opening) {
			await (await opening).ready();
			return { kind: 'local' };
		}
		const origin = await this.#store.origin(broadcastId);
		if (origin === undefined || origin === this.id) throw new NotFoundError(`no broadcast "${broadcastId}" in the cluster; its publisher has not started (or has ended)`);
		if (!room) return this.#redirect(broadcastId, hop);
		const opened = await this.#openEdge(broadcastId, origin);
		await opened.ready();
		return { kind: 'local' };
	}

	async #redirect(broadcastId: string, hop: boolean): Promise<ViewerPlacement> {
		if (hop) throw new CapacityExceededError(`this node is full and the viewer was redirected here already; try again later`);
		const nodes = await this.#store.nodes();
		this.#nodes = nodes;
		const target = pickRedirect(nodes, broadcastId, this.id);
		if (!target) throw new CapacityExceededError('no node of the cluster has room for another viewer; try again later or add a node');
		this.#redirects += 1;
		return { kind: 'redirect', node: target.id, url: target.url };
	}

	#openEdge(broadcastId: string, origin: string): Promise<Edge> {
		const opening = Edge.open({
			broadcastId,
			origin,
			self: { id: this.id, url: this.options.publicUrl },
			options: this.options,
			token: this.#node.tokens.admin,
			createBroadcast: () => this.#node.createBroadcast({ id: broadcastId, mode: 'baseline' }),
			listenIp: this.#relay.options.listenIp,
			announcedIp: this.#relay.options.announcedIp,
			feeds: this.#feeds,
			nodes: async () => (this.#nodes = await this.#store.nodes()),
			servedPulls: () => this.#served.of(broadcastId).length,
			onRepull: () => void this.#served.closeWhere((p) => p.broadcastId === broadcastId),
			onClosed: () => {
				if (this.#edges.get(broadcastId)?.closed) this.#edges.delete(broadcastId);
			},
			logger: this.#logger,
		});
		this.#openingEdges.set(broadcastId, opening);
		return opening
			.then((edge) => {
				if (!edge.closed) this.#edges.set(broadcastId, edge);
				return edge;
			})
			.finally(() => this.#openingEdges.delete(broadcastId));
	}

	/**
	 * Makes this node the origin of `broadcastId` before a publisher is let in: takes
	 * the origin lease, or takes it over from a holder that is gone; ConflictError
	 * (409) when another live node holds it. An edge of it here stops pulling first.
	 */
	async claimOrigin(broadcastId: string): Promise<void> {
		if (this.#origins.has(broadcastId) && this.#relay.broadcasts.has(broadcastId) && !this.#edges.has(broadcastId)) return;
		let holder = await this.#store.acquireOrigin(broadcastId, this.id, this.options.leaseMs);
		if (holder !== this.id) {
			if (!(await this.#nodeGone(holder))) {
				const at = this.#nodes.find((n) => n.id === holder)?.url;
				throw new ConflictError(`broadcast "${broadcastId}" is published at node ${holder}${at ? ` (${at})` : ''}; a broadcast has one publisher: publish there, or end it first`);
			}
			holder = await this.#store.takeOverOrigin(broadcastId, holder, this.id, this.options.leaseMs);
			if (holder !== this.id) throw new ConflictError(`broadcast "${broadcastId}" was just taken by node ${holder}; publish there`);
			this.#logger.warn({ broadcastId }, 'took over the origin of a broadcast whose origin node is gone');
		}
		const edge = this.#edges.get(broadcastId) ?? (await this.#openingEdges.get(broadcastId)?.catch(() => undefined));
		if (edge) await edge.close('this node is the origin now');
		// The broadcast created for the publisher joins #origins (broadcastCreated); a publish that fails leaves the lease to expire.
		await this.#store.publish({ type: 'origin', broadcast: broadcastId, node: this.id }).catch(() => undefined);
	}

	/** True when `node` has no lease, or does not answer its health check (killed, not yet expired). */
	async #nodeGone(node: string): Promise<boolean> {
		const record = await this.#store.node(node);
		if (!record) return true;
		try {
			const response = await fetch(new URL('/healthz', record.url), { signal: AbortSignal.timeout(500) });
			return !response.ok;
		} catch {
			return true;
		}
	}

	// ---- pulls served to other edges -----------------------------------------------------

	async servePull(request: { broadcast: string; node: string; url: string }): Promise<ServedPull> {
		const broadcast = this.#relay.broadcasts.get(request.broadcast);
		if (!broadcast) throw new NotFoundError(`this node does not hold "${request.broadcast}"`);
		const edge = this.#edges.get(request.broadcast);
		if (edge && !edge.live) throw new ConflictError(`this node's own pull of "${request.broadcast}" is not live; pull from another node`);
		if (request.node === this.id) throw new ConflictError('a node cannot pull from itself');
		const pull = await this.#served.open(broadcast, { id: request.node, url: request.url });
		edge?.checkIdle();
		return pull;
	}

	/** The feed an upstream pipes into, by the key in its receiving URL. */
	feed(key: string, broadcastId: string): EdgeFeed {
		const feed = this.#feeds.get(key);
		if (!feed || feed.closed) throw new NotFoundError('no such edge feed (the edge stopped pulling); pull again');
		const edge = [...this.#edges.values()].find((e) => e.broadcastId === broadcastId);
		if (edge && !edge.hasFeed(key)) throw new NotFoundError('this feed is not of that broadcast');
		return feed;
	}

	async closePull(id: string): Promise<boolean> {
		const pull = this.#served.list().find((p) => p.id === id);
		const closed = await this.#served.close(id);
		if (pull) this.#edges.get(pull.broadcastId)?.checkIdle();
		return closed;
	}

	// ---- events and heartbeat ---------------------------------------------------------------

	#onEvent(event: ClusterEvent): void {
		if (this.#closed || event.node === this.id) return;
		if (event.type === 'ended') {
			const edge = this.#edges.get(event.broadcast);
			if (edge && edge.origin === event.node) void edge.close('broadcast ended at its origin');
			return;
		}
		// Another node is the origin now: an edge pulls from it; an origin here steps down.
		const edge = this.#edges.get(event.broadcast);
		if (edge) {
			if (edge.origin !== event.node) void edge.repull('origin moved', event.node);
			return;
		}
		if (this.#origins.has(event.broadcast)) void this.#stepDown(event.broadcast, event.node);
	}

	async #stepDown(broadcastId: string, to: string): Promise<void> {
		this.#logger.warn({ broadcastId, origin: to }, 'another node holds the origin lease now; ending the broadcast here');
		this.#origins.delete(broadcastId);
		await this.#relay.broadcasts.get(broadcastId)?.close();
	}

	#broadcastCreated(broadcast: Broadcast): void {
		if (this.#openingEdges.has(broadcast.id) || this.#edges.has(broadcast.id)) return;
		// Created here by a publisher or the API: this node is its origin (WHIP claimed the lease already).
		this.#origins.add(broadcast.id);
		this.#store.acquireOrigin(broadcast.id, this.id, this.options.leaseMs).then(
			(holder) => holder !== this.id && this.#logger.warn({ broadcastId: broadcast.id, holder }, 'broadcast created here while another node holds its origin lease'),
			() => undefined,
		);
	}

	async #broadcastClosed(id: string): Promise<void> {
		const edge = this.#edges.get(id);
		if (edge) {
			if (edge.broadcast?.closed) void edge.close('broadcast closed');
		} else if (this.#origins.delete(id) && !this.#closed) {
			// Edges hear of the end before their pipes go quiet, so they close instead of pulling again.
			await this.#store.releaseOrigin(id, this.id).catch(() => undefined);
			await this.#store.publish({ type: 'ended', broadcast: id, node: this.id }).catch(() => undefined);
		}
		await this.#served.closeWhere((p) => p.broadcastId === id);
	}

	#load(): NodeLoad {
		const workers = this.#relay.workerLoad();
		let viewers = 0;
		for (const b of this.#relay.broadcasts.values()) viewers += b.viewers.size;
		return {
			consumers: workers.reduce((sum, w) => sum + w.consumers, 0),
			budget: workers.reduce((sum, w) => sum + (w.alive ? w.budget : 0), 0),
			viewers,
			broadcasts: this.#relay.broadcasts.size,
			cpu: this.#cpu,
		};
	}

	#record(): NodeRecord {
		const broadcasts: NodeBroadcast[] = [...this.#relay.broadcasts.values()].map((b) => {
			const edge = this.#edges.get(b.id);
			const pulls = this.#served.of(b.id).map((p) => p.node);
			if (edge) return { id: b.id, role: 'edge', upstream: edge.upstream, origin: edge.origin, live: edge.live, viewers: b.viewers.size, pulls };
			// An edge still making its first pull is an edge that is not live yet, not an origin.
			if (this.#openingEdges.has(b.id)) return { id: b.id, role: 'edge', live: false, viewers: b.viewers.size, pulls };
			return { id: b.id, role: 'origin', live: b.live, viewers: b.viewers.size, pulls };
		});
		const { announcedIp, listenIp } = this.#relay.options;
		return { id: this.id, url: this.options.publicUrl, ip: announcedIp ?? listenIp, startedAt: this.#startedAt, updatedAt: Date.now(), load: this.#load(), broadcasts };
	}

	#graceAfterOutage(): void {
		this.#judgeAfter = performance.now() + this.options.leaseMs;
	}

	async #heartbeat(): Promise<void> {
		const now = cpuTimes();
		const busy = now.busy - this.#cpuTimes.busy;
		const total = now.total - this.#cpuTimes.total;
		if (total > 0) this.#cpu = Math.round((busy / total) * 100) / 100;
		this.#cpuTimes = now;
		await this.#store.heartbeat(this.#record(), this.options.leaseMs);
		this.#heartbeats += 1;
		// Renew the origin leases; one lost to another node means this node is no longer the origin.
		for (const id of [...this.#origins]) {
			const holder = await this.#store.acquireOrigin(id, this.id, this.options.leaseMs);
			if (holder !== this.id) await this.#stepDown(id, holder);
		}
		this.#nodes = await this.#store.nodes();
		if (performance.now() < this.#judgeAfter) return;
		const alive = new Set(this.#nodes.map((n) => n.id));
		// Pulls served to nodes that are gone: their pipes would send into the void.
		await this.#served.closeWhere((p) => !alive.has(p.node));
		for (const edge of this.#edges.values()) edge.check(this.#nodes, await this.#store.origin(edge.broadcastId));
	}

	async #run(): Promise<void> {
		const { signal } = this.#abort;
		while (!signal.aborted) {
			await new Promise((resolve) => {
				const timer = setTimeout(resolve, this.options.heartbeatMs);
				signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)), { once: true });
			});
			if (signal.aborted) return;
			try {
				await this.#heartbeat();
			} catch (error) {
				// Redis away: keep serving; the next heartbeat that gets through registers the node again.
				this.#heartbeatFailures += 1;
				this.#graceAfterOutage();
				if (!(error instanceof ClusterUnavailableError)) this.#logger.error({ err: error }, 'cluster heartbeat failed');
			}
		}
	}

	// ---- view ----------------------------------------------------------------------------

	/** The whole cluster as Redis has it, and this node's pulls. */
	async view(): Promise<ClusterView> {
		const pulls = {
			served: this.#served.list().map((p) => ({ id: p.id, broadcast: p.broadcastId, node: p.node, pipes: p.pipes.length })),
			pulling: [...this.#edges.values()].map((e) => ({ broadcast: e.broadcastId, upstream: e.upstream, origin: e.origin, live: e.live, pipes: e.pipes })),
		};
		let nodes: NodeRecord[];
		let origins: Map<string, string>;
		try {
			[nodes, origins] = await Promise.all([this.#store.nodes(), this.#store.origins()]);
		} catch {
			return { self: this.id, redis: 'down', nodes: [{ ...this.#record(), self: true }], broadcasts: [], pulls };
		}
		const broadcasts = [...origins].sort(([a], [b]) => a.localeCompare(b)).map(([id, origin]) => ({
			id,
			origin,
			edges: nodes.flatMap((n) => n.broadcasts.filter((b) => b.id === id && b.role === 'edge').map((b) => ({ node: n.id, upstream: b.upstream, viewers: b.viewers, live: b.live }))),
			tree: pullTree(nodes, id, origin),
		}));
		return { self: this.id, redis: 'up', nodes: nodes.sort((a, b) => a.id.localeCompare(b.id)).map((n) => ({ ...n, self: n.id === this.id })), broadcasts, pulls };
	}

	/** Per-node cluster metrics on the service's registry. */
	registerMetrics(registry: Registry): void {
		const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void) =>
			new Gauge({ name, help, labelNames, registers: [registry], collect() { this.reset(); fill(this); } });
		gauge('broadcast_relay_cluster_redis_up', '1 while the cluster Redis is reachable', [], (g) => g.set(this.redisConnected ? 1 : 0));
		gauge('broadcast_relay_cluster_heartbeats', 'Heartbeats written (total) and failed (Redis away)', ['outcome'], (g) => {
			g.set({ outcome: 'ok' }, this.#heartbeats);
			g.set({ outcome: 'failed' }, this.#heartbeatFailures);
		});
		gauge('broadcast_relay_cluster_redirects', 'WHEP viewers redirected to another node since start', [], (g) => g.set(this.#redirects));
		gauge('broadcast_relay_cluster_broadcasts', 'Broadcasts held here by role', ['role'], (g) => {
			g.set({ role: 'origin' }, this.#origins.size);
			g.set({ role: 'edge' }, this.#edges.size);
		});
		gauge('broadcast_relay_cluster_pulls_served', 'Edge pulls this node serves, per broadcast', ['broadcast'], (g) => {
			for (const p of this.#served.list()) g.inc({ broadcast: p.broadcastId });
		});
	}

	/** Stops the heartbeat, closes every pull (served and pulled), leaves the cluster. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		this.#abort.abort();
		await this.#loop;
		await this.#served.closeAll();
		await Promise.all([...this.#edges.values()].map((e) => e.close('node shutting down')));
		for (const id of this.#origins) {
			await this.#store.releaseOrigin(id, this.id).catch(() => undefined);
			await this.#store.publish({ type: 'ended', broadcast: id, node: this.id }).catch(() => undefined);
		}
		await this.#store.deregister(this.id).catch(() => undefined);
		this.#store.close();
	}
}

function cpuTimes(): { busy: number; total: number } {
	let busy = 0;
	let total = 0;
	for (const cpu of cpus()) {
		const t = cpu.times;
		const all = t.user + t.nice + t.sys + t.idle + t.irq;
		total += all;
		busy += all - t.idle;
	}
	return { busy, total };
}
