import type { Broadcast } from '../Broadcast.js';
import { EdgeFeed } from './EdgeFeed.js';
import { ClusterUnavailableError } from './errors.js';
import type { Logger } from '../logger.js';
import { relayRequest, RelayRefusedError } from '../relayClient.js';
import type { ClusterOptions } from './options.js';
import { pickUpstreams, type NodeRecord } from './placement.js';

export interface EdgeOptions {
	broadcastId: string;
	/** The node the stream comes from. */
	origin: string;
	self: { id: string; url: string };
	options: ClusterOptions;
	/** Admin token for the upstream's pull API. */
	token?: string;
	/** Creates the local broadcast the edge fans out (baseline mode: edges never re-encode). */
	createBroadcast(): Promise<Broadcast>;
	/** Where the feed's sockets listen and what they announce. */
	listenIp: string;
	announcedIp?: string;
	/** Receiving feeds by key, for the pipe requests of the upstream (see registerClusterRoutes). */
	feeds: Map<string, EdgeFeed>;
	/** The cluster's nodes, read fresh. */
	nodes(): Promise<NodeRecord[]>;
	/** Pulls of this broadcast that this node serves to other edges. */
	servedPulls(): number;
	/** Called when the pull changes (downstream edges must pull again). */
	onRepull(): void;
	/** Called once, when the edge has closed. */
	onClosed(): void;
	logger: Logger;
}

interface Upstream {
	node: string;
	url: string;
	pullId: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	try {
		return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
	} finally {
		clearTimeout(timer);
	}
}

/**
 * This node as an edge of a broadcast: a local broadcast in baseline mode fed,
 * through the stable producers of an EdgeFeed, by pipes from an upstream node
 * (the origin, or an edge when the origin serves its limit of pulls), pulled
 * once and fanned out to the local viewers. Re-pulls when the upstream goes or
 * the origin changes, and the viewers stay (the feed's producers do not change);
 * stops pulling (and closes its broadcast) when idle for edgeLingerMs, or when orphaned.
 */
export class Edge {
	readonly broadcastId: string;
	readonly #options: EdgeOptions;
	readonly #logger: Logger;
	#origin: string;
	#broadcast?: Broadcast;
	#feed?: EdgeFeed;
	#upstream?: Upstream;
	#pulling?: Promise<void>;
	#dropping = false;
	#linger?: NodeJS.Timeout;
	#orphanSince?: number;
	#closed = false;

	private constructor(options: EdgeOptions) {
		this.#options = options;
		this.broadcastId = options.broadcastId;
		this.#origin = options.origin;
		this.#logger = options.logger.child({ module: 'Edge', broadcastId: options.broadcastId });
	}

	/** Creates the local broadcast and pulls; on failure nothing is left behind. */
	static async open(options: EdgeOptions): Promise<Edge> {
		const edge = new Edge(options);
		try {
			const broadcast = await options.createBroadcast();
			edge.#broadcast = broadcast;
			edge.#feed = await EdgeFeed.create({
				broadcast,
				listenIp: options.listenIp,
				announcedIp: options.announcedIp,
				// The upstream ended its pipes (it re-pulled, or its broadcast ended): pull again unless this edge did it.
				onUpstreamClosed: () => {
					if (!edge.#dropping && !edge.#closed) void edge.repull('upstream closed its pipes');
				},
				logger: edge.#logger,
			});
			options.feeds.set(edge.#feed.key, edge.#feed);
			// The stable producers are gone only with their router (its worker died): start afresh with the next viewer.
			broadcast.on('sourceclosed', () => void edge.close('its feed was lost with its worker'));
			broadcast.on('viewerleft', () => edge.checkIdle());
			broadcast.on('viewerjoined', () => edge.checkIdle());
			edge.#pulling = edge.#pull().finally(() => (edge.#pulling = undefined));
			await edge.#pulling;
		} catch (error) {
			await edge.close('pull failed');
			throw error;
		}
		return edge;
	}

	get closed(): boolean {
		return this.#closed;
	}

	get origin(): string {
		return this.#origin;
	}

	get upstream(): string | undefined {
		return this.#upstream?.node;
	}

	get broadcast(): Broadcast | undefined {
		return this.#broadcast;
	}

	/** Pipes feeding the edge now (one per track while it pulls). */
	get pipes(): number {
		return this.#feed?.sessions ?? 0;
	}

	hasFeed(key: string): boolean {
		return this.#feed?.key === key;
	}

	get live(): boolean {
		return !this.#closed && this.#upstream !== undefined && this.#pulling === undefined && (this.#broadcast?.live ?? false);
	}

	/** Waits out a pull in progress; throws when the edge could not become live. */
	async ready(): Promise<void> {
		await this.#pulling;
		const deadline = performance.now() + 2000;
		// Sources are produced by the upstream's calls; the broadcast is live once every kind is published.
		while (!this.live && !this.#closed && performance.now() < deadline) await sleep(50);
		if (!this.live) throw new ClusterUnavailableError(`this node's pull of "${this.broadcastId}" is not live; try again in a moment`);
	}

	/** Drops the current pull and pulls again (from `origin` when it changed). Coalesces with a pull in progress. */
	repull(reason: string, origin?: string): Promise<void> {
		if (this.#closed) return Promise.resolve();
		if (origin) this.#origin = origin;
		this.#orphanSince = undefined;
		if (this.#pulling) return this.#pulling;
		this.#logger.info({ reason, origin: this.#origin }, 'pulling again');
		this.#dropUpstream();
		this.#options.onRepull();
		this.#pulling = this.#pull()
			.catch((error: unknown) => {
				this.#logger.warn({ err: error }, 'could not pull again; closing the edge');
				void this.close('re-pull failed');
			})
			.finally(() => (this.#pulling = undefined));
		return this.#pulling;
	}

	/**
	 * Heartbeat check against the current cluster view: the upstream's node gone
	 * (its lease ran out) → pull again; the origin lease moved → pull from the new
	 * origin; no origin at all for orphanMs → close.
	 */
	check(nodes: readonly NodeRecord[], origin: string | undefined): void {
		if (this.#closed || this.#pulling) return;
		if (origin === undefined || !nodes.some((n) => n.id === origin)) {
			this.#orphanSince ??= performance.now();
			if (performance.now() - this.#orphanSince > this.#options.options.orphanMs) void this.close('origin gone');
			return;
		}
		this.#orphanSince = undefined;
		if (origin !== this.#origin) void this.repull('origin moved', origin);
		else if (this.#upstream && !nodes.some((n) => n.id === this.#upstream!.node)) void this.repull('upstream node gone');
	}

	/** Starts the linger timer when nothing uses this edge (no viewer, no downstream pull); stops it when something does. */
	checkIdle(): void {
		if (this.#closed) return;
		const idle = (this.#broadcast?.viewers.size ?? 0) === 0 && this.#options.servedPulls() === 0;
		if (!idle) {
			clearTimeout(this.#linger);
			this.#linger = undefined;
			return;
		}
		this.#linger ??= setTimeout(() => {
			this.#linger = undefined;
			if ((this.#broadcast?.viewers.size ?? 0) === 0 && this.#options.servedPulls() === 0) void this.close('idle');
		}, this.#options.options.edgeLingerMs);
	}

	async #pull(): Promise<void> {
		const { options, self, broadcastId, token } = this.#options;
		const deadline = performance.now() + options.pullTimeoutMs;
		let last: unknown;
		while (!this.#closed) {
			const nodes = await this.#options.nodes();
			for (const node of pickUpstreams(nodes, broadcastId, this.#origin, options.maxEdgePulls, self.id)) {
				try {
					// An upstream that does not answer (a partition, not a refused connection) must not hold the viewer beyond the deadline.
					const pulled = await withTimeout(
						relayRequest<{ pullId: string; sessionUrls: string[] }>(node.url, '/api/cluster/pulls', {
							method: 'POST',
							body: { broadcast: broadcastId, node: self.id, url: `${self.url.replace(/\/+$/, '')}/api/cluster/receive/${this.#feed!.key}` },
							token,
						}),
						Math.max(500, deadline - performance.now()),
						`node ${node.id} did not answer the pull in time`,
					);
					if (this.#closed) return;
					this.#upstream = { node: node.id, url: node.url, pullId: pulled.pullId };
					this.#logger.info({ upstream: node.id, origin: this.#origin }, 'pulling');
					this.checkIdle();
					return;
				} catch (error) {
					last = error;
					// A refusal (not live yet, its pull limit) or a node that is gone: try the next one.
					this.#logger.debug({ err: error, upstream: node.id }, 'upstream refused the pull');
				}
			}
			if (performance.now() > deadline) break;
			await sleep(200);
		}
		if (this.#closed) return;
		if (last instanceof RelayRefusedError && last.status === 503) throw new ClusterUnavailableError(`no node can serve another pull of "${broadcastId}"; try again later`);
		throw new ClusterUnavailableError(`could not pull "${broadcastId}" from its origin ${this.#origin} within ${options.pullTimeoutMs} ms (${(last as Error | undefined)?.message ?? 'no node holds it'}); try again`);
	}

	/** Ends the local pipe-ingest sessions and (best effort, not awaited) the pull upstream. */
	#dropUpstream(): void {
		const upstream = this.#upstream;
		this.#upstream = undefined;
		if (!upstream) return;
		this.#dropping = true;
		try {
			this.#feed?.closeSessions();
		} finally {
			this.#dropping = false;
		}
		relayRequest(upstream.url, `/api/cluster/pulls/${encodeURIComponent(upstream.pullId)}`, { method: 'DELETE', token: this.#options.token }).catch(() => undefined);
	}

	/** Stops pulling and closes the local broadcast (and so its viewers). Idempotent. */
	async close(reason: string): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		clearTimeout(this.#linger);
		this.#logger.info({ reason }, 'edge closed');
		this.#dropUpstream();
		if (this.#feed) this.#options.feeds.delete(this.#feed.key);
		this.#feed?.close();
		await this.#broadcast?.close();
		this.#options.onClosed();
	}
}
