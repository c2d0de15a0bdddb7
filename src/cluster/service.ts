import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InvalidOptionError, NotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import { formatIssues } from '../options.js';
import type { Relay } from '../Relay.js';
import type { BroadcastCreator } from '../service/broadcasts.js';
import type { ServiceConfig } from '../service/config.js';
import { sendJsonError } from '../service/httpErrors.js';
import { parseBody, pipeOpenBody, pipeProduceBody } from '../service/requestBodies.js';
import type { SessionRegistry } from '../service/sessions.js';
import { ClusterNode } from './ClusterNode.js';

/** Starts this service's cluster node (config.cluster set): tokens and broadcast creation come from the service. */
export async function startClusterNode(context: { config: ServiceConfig; relay: Relay; sessions: SessionRegistry; creator: BroadcastCreator; logger: Logger }): Promise<ClusterNode> {
	const { config, relay, creator, logger } = context;
	if (!config.cluster) throw new InvalidOptionError('cluster mode needs cluster options (--cluster redis://…)');
	return ClusterNode.start({
		options: config.cluster,
		relay,
		createBroadcast: (options) => creator.create(options),
		tokens: { ingest: config.ingestTokens[0], admin: config.adminTokens[0] },
		logger,
	});
}

/**
 * The Location of a WHEP redirect: the same resource on `base`, the request's
 * query kept (a token) and hop=1 added, so the node it reaches serves or
 * refuses but never redirects again.
 */
export function redirectLocation(base: string, requestUrl: string): string {
	const from = new URL(requestUrl, 'http://placeholder');
	const to = new URL(from.pathname, `${base.replace(/\/+$/, '')}/`);
	for (const [key, value] of from.searchParams) if (key !== 'hop') to.searchParams.append(key, value);
	to.searchParams.set('hop', '1');
	return to.toString();
}

/** True when the request was redirected here by another node (see redirectLocation). */
export function redirectedHere(request: FastifyRequest): boolean {
	return (request.query as Record<string, unknown> | undefined)?.hop !== undefined;
}


const pullBody = z.strictObject({
	broadcast: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
	node: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
	url: z.string().regex(/^https?:\/\/\S+$/, 'url must be the pulling node\'s http(s) base URL'),
});

/**
 * The cluster's HTTP API (admin): GET /api/cluster (nodes, load, each
 * broadcast's origin, edges and pull tree, this node's pulls); POST
 * /api/cluster/pulls (another node pulls a broadcast from here) and DELETE
 * /api/cluster/pulls/:id.
 */
export function registerClusterRoutes(
	app: FastifyInstance,
	cluster: ClusterNode,
	options: { retryAfterSeconds: number; authorize(request: FastifyRequest, reply: FastifyReply): boolean | Promise<boolean> },
): void {
	const retry = options.retryAfterSeconds;
	app.get('/api/cluster', async (request, reply) => {
		if (!(await options.authorize(request, reply))) return reply;
		return cluster.view();
	});
	app.post('/api/cluster/pulls', async (request, reply) => {
		if (!(await options.authorize(request, reply))) return reply;
		try {
			const parsed = pullBody.safeParse(request.body);
			if (!parsed.success) throw new InvalidOptionError(`pull body: ${formatIssues(parsed.error, 'body')}`);
			const pull = await cluster.servePull(parsed.data);
			return reply.code(201).send({ pullId: pull.id, sessionUrls: pull.pipes.map((p) => p.sessionUrl) });
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});
	// An edge's feed, as an upstream's pipeToRelay() sees a pipe ingest: the same requests under the feed's base URL
	// (/api/cluster/receive/<key>, the key an unguessable capability the edge gave its upstream).
	type Receive = { Params: { key: string; id: string; session: string } };
	const base = '/api/cluster/receive/:key/api/broadcasts/:id/pipe-ingest';
	app.post<Receive>(base, async (request, reply) => {
		try {
			const feed = cluster.feed(request.params.key, request.params.id);
			const opened = await feed.openSession(parseBody(pipeOpenBody, request.body, 'pipe ingest body'));
			const sessionUrl = `/api/cluster/receive/${encodeURIComponent(feed.key)}/api/broadcasts/${encodeURIComponent(request.params.id)}/pipe-ingest/${opened.id}`;
			return reply.code(201).header('location', sessionUrl).send({ sessionUrl, ip: opened.ip, port: opened.port });
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});
	app.post<Receive>(`${base}/:session/producers`, async (request, reply) => {
		try {
			const body = parseBody(pipeProduceBody, request.body, 'pipe producer body');
			const producer = await cluster.feed(request.params.key, request.params.id).produce(request.params.session, body as never);
			return reply.code(201).send({ producerId: producer.id });
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});
	app.delete<Receive>(`${base}/:session`, async (request, reply) => {
		try {
			if (!cluster.feed(request.params.key, request.params.id).closeSession(request.params.session, true)) throw new NotFoundError('no such pipe session');
			return reply.code(204).send();
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});
	app.delete<{ Params: { id: string } }>('/api/cluster/pulls/:id', async (request, reply) => {
		if (!(await options.authorize(request, reply))) return reply;
		if (!(await cluster.closePull(request.params.id))) return reply.code(404).send({ error: 'ERR_NOT_FOUND', message: 'no such pull' });
		return reply.code(204).send();
	});
}
