import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConflictError, InvalidOptionError, NotFoundError } from '../../errors.js';
import type { Viewer } from '../../viewers/Viewer.js';
import { parseMaxLayer } from './layers.js';
import type { ClusterNode } from '../../cluster/ClusterNode.js';
import { redirectedHere, redirectLocation } from '../../cluster/service.js';
import type { Relay } from '../../Relay.js';
import { parseOffer } from '../../sdp/parseOffer.js';
import type { AccessPolicy } from '../../auth/AccessPolicy.js';
import { iceServerLinks } from '../../turn/credentials.js';
import { authorizeRequest } from '../auth.js';
import type { BroadcastCreator } from '../broadcasts.js';
import type { ServiceConfig } from '../config.js';
import { sendError } from '../httpErrors.js';
import type { SessionRegistry } from '../sessions.js';

interface Context {
	relay: Relay;
	sessions: SessionRegistry;
	config: ServiceConfig;
	creator: BroadcastCreator;
	/** Cluster mode: WHIP claims the origin, WHEP is placed in the cluster (here, pulled, or redirected). */
	cluster?: ClusterNode;
	access: AccessPolicy;
}

type Params = { broadcast: string };
type SessionParams = { broadcast: string; session: string };

const CORS = {
	'access-control-allow-origin': '*',
	'access-control-allow-headers': 'authorization, content-type, if-match',
	'access-control-expose-headers': 'location, etag, accept-post, accept-patch, link',
};

function isSdp(request: FastifyRequest): boolean {
	return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() === 'application/sdp';
}

function methodNotAllowed(allow: string) {
	return async (_request: FastifyRequest, reply: FastifyReply) =>
		reply.code(405).header('allow', allow).type('text/plain; charset=utf-8').send(`method not allowed; use ${allow}`);
}

/**
 * WHIP (RFC 9725) ingest and WHEP playback: POST an SDP offer to
 * /whip|whep/:broadcast, get 201 with the answer and a session URL; DELETE
 * the session URL to end it. mediasoup is ICE-lite and its answers carry
 * every candidate, so trickle PATCHes are acknowledged and not needed.
 */
export function registerSdpEndpoints(app: FastifyInstance, context: Context): void {
	const { relay, sessions, config, creator, access, cluster } = context;

	for (const protocol of ['whip', 'whep'] as const) {
		const resource = `/${protocol}/:broadcast`;
		const sessionPath = `${resource}/sessions/:session`;
		const action = protocol === 'whip' ? 'publish' : 'play';

		app.options(resource, async (_request, reply) =>
			reply.code(204).headers({ ...CORS, 'access-control-allow-methods': 'POST, OPTIONS', 'accept-post': 'application/sdp' }).send(),
		);
		app.options(sessionPath, async (_request, reply) =>
			reply
				.code(204)
				.headers({ ...CORS, 'access-control-allow-methods': 'PATCH, DELETE, OPTIONS', 'accept-patch': protocol === 'whep' ? 'application/trickle-ice-sdpfrag, application/json' : 'application/trickle-ice-sdpfrag' })
				.send(),
		);
		app.route({ method: ['GET', 'PUT', 'PATCH', 'DELETE'], url: resource, handler: methodNotAllowed('POST, OPTIONS') });
		app.route({ method: ['GET', 'PUT', 'POST'], url: sessionPath, handler: methodNotAllowed('PATCH, DELETE, OPTIONS') });

		app.post<{ Params: Params; Body: string }>(resource, async (request, reply) => {
			reply.headers(CORS);
			if (!(await authorizeRequest(request, reply, access, { action, broadcastId: request.params.broadcast }, protocol))) return reply;
			if (!isSdp(request)) {
				return reply
					.code(415)
					.header('accept-post', 'application/sdp')
					.type('text/plain; charset=utf-8')
					.send('send the SDP offer with Content-Type: application/sdp');
			}
			const id = request.params.broadcast;
			try {
				if (cluster && protocol === 'whip') await cluster.claimOrigin(id);
				if (cluster && protocol === 'whep') {
					const placed = await cluster.placeViewer(id, redirectedHere(request));
					if (placed.kind === 'redirect') return reply.code(307).header('location', redirectLocation(placed.url, request.url)).send();
				}
				const created = await (protocol === 'whip' ? startPublication(id, request.body) : startViewer(id, request.body, maxLayerQuery(request.query)));
				// RFC 9725 §4.6: the ICE servers (TURN with credentials for this session) ride on the answer.
				const links = iceServerLinks(config.turn, created.sessionId);
				if (links.length) reply.header('link', links);
				return reply.code(201).headers({ location: created.url, etag: created.etag }).type('application/sdp').send(created.answer);
			} catch (error) {
				return sendError(reply, error, config.retryAfterSeconds);
			}
		});

		app.delete<{ Params: SessionParams }>(sessionPath, async (request, reply) => {
			reply.headers(CORS);
			if (!(await authorizeRequest(request, reply, access, { action, broadcastId: request.params.broadcast }, protocol))) return reply;
			const session = sessions.get(protocol, request.params.broadcast, request.params.session);
			if (!session) return reply.code(404).type('text/plain; charset=utf-8').send('no such session (it ended already, or never existed)');
			sessions.end(session.id);
			return reply.code(200).send();
		});

		app.patch<{ Params: SessionParams }>(sessionPath, async (request, reply) => {
			reply.headers(CORS);
			if (!(await authorizeRequest(request, reply, access, { action, broadcastId: request.params.broadcast }, protocol))) return reply;
			const session = sessions.get(protocol, request.params.broadcast, request.params.session);
			if (!session) return reply.code(404).type('text/plain; charset=utf-8').send('no such session');
			const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim();
			// A WHEP viewer's own maximum simulcast layer: PATCH {"maxLayer": n} (null: no limit of its own).
			if (protocol === 'whep' && type === 'application/json') {
				try {
					const viewer = session.data as Viewer;
					await relay.broadcast(request.params.broadcast).setViewerMaxLayer(viewer.id, parseMaxLayer(request.body) ?? undefined);
					return reply.code(200).send(viewer.info.layers ?? {});
				} catch (error) {
					return sendError(reply, error, config.retryAfterSeconds);
				}
			}
			const patchable = protocol === 'whep' ? 'application/trickle-ice-sdpfrag, application/json' : 'application/trickle-ice-sdpfrag';
			if (type !== 'application/trickle-ice-sdpfrag') return reply.code(415).header('accept-patch', patchable).send();
			const ifMatch = request.headers['if-match'];
			// An ICE restart (If-Match: * with new credentials) needs renegotiation an ICE-lite session does not do.
			if (ifMatch === '*') return reply.code(422).type('text/plain; charset=utf-8').send('ICE restarts are not supported; start a new session');
			if (ifMatch && ifMatch !== session.etag) return reply.code(412).send();
			return reply.code(204).send();
		});
	}

	async function startPublication(id: string, sdp: string) {
		// A malformed offer is refused before anything is created for it.
		parseOffer(sdp);
		return creator.withBroadcast(id, config.autoCreateBroadcasts, async (broadcast) => {
			const publication = await broadcast.publish(sdp);
			const session = sessions.create('whip', id, () => publication.close());
			publication.transport.observer.once('close', () => sessions.forget(session.id));
			return { url: `/whip/${encodeURIComponent(id)}/sessions/${session.id}`, sessionId: session.id, etag: session.etag, answer: publication.answer };
		});
	}

	async function startViewer(id: string, sdp: string, maxLayer: number | undefined) {
		const broadcast = relay.broadcasts.get(id);
		if (!broadcast) throw new NotFoundError(`no broadcast "${id}"`);
		if (!broadcast.live) throw new ConflictError(`broadcast "${id}" is not live yet; try again when its publisher has started`);
		const { viewer, answer } = await broadcast.addViewer(sdp, maxLayer !== undefined ? { maxLayer } : {});
		const session = sessions.create('whep', id, () => viewer.close(), viewer);
		viewer.once('close', () => sessions.forget(session.id));
		return { url: `/whep/${encodeURIComponent(id)}/sessions/${session.id}`, sessionId: session.id, etag: session.etag, answer };
	}
}

/** WHEP POST `?maxLayer=n`: the viewer's own maximum simulcast layer from the start (0: the lowest). */
function maxLayerQuery(query: unknown): number | undefined {
	const value = (query as Record<string, unknown> | undefined)?.maxLayer;
	if (value === undefined) return undefined;
	if (typeof value !== 'string' || !/^\d$/.test(value)) throw new InvalidOptionError(`maxLayer must be a layer number, 0 (lowest) to 3, not "${String(value)}"`);
	return Number(value);
}
