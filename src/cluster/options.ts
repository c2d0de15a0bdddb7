import { hostname } from 'node:os';
import { z } from 'zod';

const url = (what: string) =>
	z
		.string()
		.refine((value) => {
			try {
				return ['redis:', 'rediss:', 'http:', 'https:'].includes(new URL(value).protocol);
			} catch {
				return false;
			}
		}, `${what} must be a URL such as ${what === 'redisUrl' ? 'redis://redis:6379' : 'http://10.0.0.5:8080'}`);

/**
 * Cluster mode (`serve --cluster redis://…`). Without it the relay is a single host. Every
 * node of one cluster must share the Redis, the ingest and admin tokens (nodes call each
 * other's pipe-ingest and pull APIs with the first of each).
 */
export const clusterOptionsSchema = z
	.strictObject({
		/** Redis holding the cluster state (node leases, origin leases, events). Required. */
		redisUrl: url('redisUrl').refine((v) => /^rediss?:/.test(v), 'redisUrl must start with redis:// or rediss://'),
		/** This node's id, unique in the cluster (a pod name). Default: the host name. */
		nodeId: z
			.string()
			.regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 letters, digits, ".", "-" or "_"')
			.default(() => hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64)),
		/** Base URL other nodes and redirected clients reach this node's HTTP service at. Required. */
		publicUrl: url('publicUrl').refine((v) => /^https?:/.test(v), 'publicUrl must start with http:// or https://'),
		/** A node, or an origin, that stops renewing its lease is gone after this long, ms. Default 4000. */
		leaseMs: z.number().int().min(500).max(60_000).default(4000),
		/** How often the lease is renewed with the node's load, ms (at most a third of leaseMs). Default 1000. */
		heartbeatMs: z.number().int().min(100).max(20_000).default(1000),
		/** Most edges that pull a broadcast from one node (origin or edge); further edges pull from edges. Default 8. */
		maxEdgePulls: z.number().int().min(1).max(1000).default(8),
		/** An edge with no viewer and no downstream pull stops pulling after this long, ms. Default 5000. */
		edgeLingerMs: z.number().int().min(0).max(600_000).default(5000),
		/** How long a viewer placement waits for an edge's pull to become live, ms. Default 8000. */
		pullTimeoutMs: z.number().int().min(500).max(60_000).default(8000),
		/** An edge whose origin is gone and not replaced closes (and its viewers) after this long, ms. Default 10000. */
		orphanMs: z.number().int().min(1000).max(600_000).default(10_000),
	})
	.refine((o) => o.heartbeatMs * 3 <= o.leaseMs, { message: 'heartbeatMs must be at most a third of leaseMs, so one lost renewal does not end the lease', path: ['heartbeatMs'] });

export type ClusterOptionsInput = z.input<typeof clusterOptionsSchema>;
export type ClusterOptions = z.output<typeof clusterOptionsSchema>;
