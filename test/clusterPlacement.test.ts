import { describe, expect, it } from 'vitest';
import { redirectLocation } from '../src/cluster/service.js';
import { clusterOptionsSchema } from '../src/cluster/options.js';
import { hasRoom, pickRedirect, pickUpstreams, pullTree, type NodeBroadcast, type NodeRecord } from '../src/cluster/placement.js';

function node(id: string, consumers: number, budget: number, broadcasts: Partial<NodeBroadcast>[] = []): NodeRecord {
	return {
		id,
		url: `http://${id}:8080`,
		ip: '10.0.0.1',
		startedAt: 0,
		updatedAt: 0,
		load: { consumers, budget, viewers: consumers / 2, broadcasts: broadcasts.length, cpu: 0 },
		broadcasts: broadcasts.map((b) => ({ id: 'show', role: 'edge', live: true, viewers: 0, pulls: [], ...b })),
	};
}

describe('cluster placement', () => {
	it('room: a viewer takes two consumers', () => {
		expect(hasRoom({ consumers: 2, budget: 4, viewers: 1, broadcasts: 1, cpu: 0 })).toBe(true);
		expect(hasRoom({ consumers: 3, budget: 4, viewers: 1, broadcasts: 1, cpu: 0 })).toBe(false);
	});

	it('redirect: an edge of the broadcast with room first, then the least-loaded node, never self, none when all are full', () => {
		const nodes = [
			node('a', 0, 100, [{ role: 'origin', pulls: ['b', 'c'] }]),
			node('b', 4, 4, [{ upstream: 'a' }]),
			node('c', 50, 100, [{ upstream: 'a' }]),
			node('d', 10, 100),
		];
		expect(pickRedirect(nodes, 'show', 'b')?.id).toBe('c');
		expect(pickRedirect(nodes, 'other', 'b')?.id).toBe('a');
		expect(pickRedirect([node('a', 0, 100)], 'show', 'a')).toBeUndefined();
		expect(pickRedirect([node('a', 4, 4), node('b', 99, 100)], 'show', 'c')).toBeUndefined();
	});

	it('upstreams: the origin while under maxEdgePulls, then edges shallowest first, never one below self', () => {
		const nodes = [
			node('a', 0, 100, [{ role: 'origin', pulls: ['b', 'c'] }]),
			node('b', 0, 100, [{ upstream: 'a', pulls: ['d'] }]),
			node('c', 0, 100, [{ upstream: 'a' }]),
			node('d', 0, 100, [{ upstream: 'b' }]),
		];
		expect(pickUpstreams(nodes, 'show', 'a', 3, 'e').map((n) => n.id)).toEqual(['a', 'c', 'b', 'd']);
		// The origin is full: edges first (c has fewer pulls than b), the origin last.
		expect(pickUpstreams(nodes, 'show', 'a', 2, 'e').map((n) => n.id)).toEqual(['c', 'b', 'd', 'a']);
		// b re-pulling must not pull from d, which pulls from b; its own old pull does not count against the origin.
		expect(pickUpstreams(nodes, 'show', 'a', 2, 'b').map((n) => n.id)).toEqual(['a', 'c']);
	});

	it('pull tree from the origin down', () => {
		const nodes = [node('a', 0, 100, [{ role: 'origin', viewers: 1 }]), node('b', 0, 100, [{ upstream: 'a', viewers: 2 }]), node('d', 0, 100, [{ upstream: 'b', viewers: 3 }])];
		expect(pullTree(nodes, 'show', 'a')).toEqual({ node: 'a', viewers: 1, children: [{ node: 'b', viewers: 2, children: [{ node: 'd', viewers: 3, children: [] }] }] });
	});

	it('redirect location keeps the query and marks the hop', () => {
		expect(redirectLocation('http://c:8080/', '/whep/show?token=x&hop=1')).toBe('http://c:8080/whep/show?token=x&hop=1');
		expect(redirectLocation('http://c:8080', '/whep/show')).toBe('http://c:8080/whep/show?hop=1');
	});

	it('options: URLs checked, heartbeat well inside the lease', () => {
		const ok = clusterOptionsSchema.parse({ redisUrl: 'redis://r:6379', nodeId: 'n1', publicUrl: 'http://n1:8080' });
		expect(ok.leaseMs).toBeLessThanOrEqual(5000);
		expect(clusterOptionsSchema.safeParse({ redisUrl: 'http://r', nodeId: 'n1', publicUrl: 'http://n1:8080' }).success).toBe(false);
		expect(clusterOptionsSchema.safeParse({ redisUrl: 'redis://r', nodeId: 'n1', publicUrl: 'ftp://n1' }).success).toBe(false);
		expect(clusterOptionsSchema.safeParse({ redisUrl: 'redis://r', nodeId: 'n1', publicUrl: 'http://n1', leaseMs: 1000, heartbeatMs: 500 }).success).toBe(false);
	});
});
