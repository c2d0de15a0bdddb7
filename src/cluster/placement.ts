/*
 * Cluster placement as pure functions over the node records read from Redis:
 * where a viewer that a node cannot take is redirected, and which node an
 * edge pulls a broadcast from (the tree). Unit-tested in test/clusterPlacement.test.ts.
 */

/** Consumers one WHEP viewer takes (video and audio). */
export const VIEWER_CONSUMERS = 2;

export interface NodeLoad {
	/** Consumers placed on the node's workers. */
	consumers: number;
	/** Consumers its live workers may carry (workers × consumersPerWorker). */
	budget: number;
	viewers: number;
	broadcasts: number;
	/** Busy share of the machine's cores over the last seconds, 0-1. */
	cpu: number;
}

export interface NodeBroadcast {
	id: string;
	role: 'origin' | 'edge';
	/** The node an edge pulls from (the origin or another edge). */
	upstream?: string;
	/** The origin an edge's stream comes from. */
	origin?: string;
	live: boolean;
	viewers: number;
	/** Nodes pulling this broadcast from this node. */
	pulls: string[];
}

/** What a node publishes in Redis under its lease, renewed with each heartbeat. */
export interface NodeRecord {
	id: string;
	/** Public base URL of its HTTP service. */
	url: string;
	/** The IP its media transports are reached at. */
	ip: string;
	startedAt: number;
	updatedAt: number;
	load: NodeLoad;
	broadcasts: NodeBroadcast[];
}

export function hasRoom(load: NodeLoad, consumers = VIEWER_CONSUMERS): boolean {
	return load.consumers + consumers <= load.budget;
}

const usage = (n: NodeRecord): number => (n.load.budget > 0 ? n.load.consumers / n.load.budget : 1);

/**
 * Where a viewer goes that `self` cannot take: an edge of the broadcast that
 * has room (it pulls already: no new pull, and the origin's egress stays as it
 * is), else the least-loaded node with room; undefined when no other node has room.
 */
export function pickRedirect(nodes: readonly NodeRecord[], broadcastId: string, self: string): NodeRecord | undefined {
	const others = nodes.filter((n) => n.id !== self && hasRoom(n.load));
	const holding = others.filter((n) => n.broadcasts.some((b) => b.id === broadcastId && b.role === 'edge' && b.live));
	const pool = holding.length > 0 ? holding : others;
	return [...pool].sort((a, b) => usage(a) - usage(b) || a.id.localeCompare(b.id))[0];
}

/**
 * The nodes an edge at `self` may pull `broadcastId` from, best first: the
 * origin while it serves fewer than `maxPulls` edges, then live edges with
 * pulls to spare, shallowest first (then fewest pulls). Edges downstream of
 * `self` are left out, so a re-pull cannot close a loop. The origin comes last
 * when it is full and no edge has room: it refuses, and the viewer gets 503.
 */
export function pickUpstreams(nodes: readonly NodeRecord[], broadcastId: string, origin: string, maxPulls: number, self: string): NodeRecord[] {
	const entry = (n: NodeRecord) => n.broadcasts.find((b) => b.id === broadcastId);
	const byId = new Map(nodes.map((n) => [n.id, n]));
	const depth = (id: string, seen = new Set<string>()): number => {
		if (id === origin) return 0;
		if (seen.has(id)) return Number.POSITIVE_INFINITY;
		seen.add(id);
		const upstream = byId.get(id) && entry(byId.get(id)!)?.upstream;
		return upstream ? depth(upstream, seen) + 1 : Number.POSITIVE_INFINITY;
	};
	const below = (id: string): boolean => {
		// True when `self` is on the path from `id` up to the origin.
		const seen = new Set<string>();
		for (let at: string | undefined = id; at && !seen.has(at); at = byId.get(at) && entry(byId.get(at)!)?.upstream) {
			if (at === self) return true;
			seen.add(at);
		}
		return false;
	};
	const originNode = byId.get(origin);
	const originPulls = originNode ? (entry(originNode)?.pulls.filter((p) => p !== self).length ?? 0) : 0;
	const edges = nodes
		.filter((n) => n.id !== self && n.id !== origin)
		.filter((n) => {
			const b = entry(n);
			return b?.role === 'edge' && b.live && b.pulls.filter((p) => p !== self).length < maxPulls && !below(n.id) && Number.isFinite(depth(n.id));
		})
		.sort((a, b) => depth(a.id) - depth(b.id) || entry(a)!.pulls.length - entry(b)!.pulls.length || a.id.localeCompare(b.id));
	if (!originNode) return edges;
	return originPulls < maxPulls ? [originNode, ...edges] : [...edges, originNode];
}

/** A broadcast's pull tree as nested nodes, from the origin down, for /api/cluster. */
export interface PullTree {
	node: string;
	viewers: number;
	children: PullTree[];
}

export function pullTree(nodes: readonly NodeRecord[], broadcastId: string, origin: string): PullTree {
	const entries = new Map(nodes.flatMap((n) => n.broadcasts.filter((b) => b.id === broadcastId).map((b) => [n.id, b] as const)));
	const build = (id: string, seen: Set<string>): PullTree => {
		seen.add(id);
		const children = [...entries].filter(([child, b]) => b.role === 'edge' && b.upstream === id && !seen.has(child)).map(([child]) => build(child, seen));
		return { node: id, viewers: entries.get(id)?.viewers ?? 0, children };
	};
	return build(origin, new Set());
}
