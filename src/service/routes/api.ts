import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PipeIngest } from '../../Broadcast.js';
import { NotFoundError } from '../../errors.js';
import type { Relay } from '../../Relay.js';
import type { AccessPolicy } from '../../auth/AccessPolicy.js';
import { authorizeRequest } from '../auth.js';
import type { BroadcastCreator } from '../broadcasts.js';
import type { ServiceConfig } from '../config.js';
import { sendJsonError } from '../httpErrors.js';
import { parseBody, pipeOpenBody, pipeProduceBody } from '../requestBodies.js';
import type { SessionRegistry } from '../sessions.js';

interface Context {
	relay: Relay;
	sessions: SessionRegistry;
	config: ServiceConfig;
	creator: BroadcastCreator;
	access: AccessPolicy;
}


const rtpIngestBody = z.union([
	z.strictObject({ sdp: z.string().min(1).max(64 * 1024) }),
	z.strictObject({
		streams: z
			.array(
				z.strictObject({
					codec: z.string().min(1).max(32),
					payloadType: z.number().int().min(0).max(127),
					ssrc: z.number().int().min(0).max(0xffff_ffff),
					parameters: z.record(z.string().max(64), z.union([z.string().max(256), z.number()])).optional(),
				}),
			)
			.min(1)
			.max(2),
	}),
]);

/** The options are checked in full by the relay (unknown keys included); here only that they are an object. */
const createBroadcastBody = z.record(z.string(), z.unknown());


type Id = { Params: { id: string } };

/** The JSON API: broadcasts, stats, worker load, and the RTP and pipe ingest for other encoders and mediasoup apps. */
export function registerApi(app: FastifyInstance, { relay, sessions, config, creator, access }: Context): void {
	const admin = { action: 'admin' } as const;
	const ingest = (broadcastId: string) => ({ action: 'publish', broadcastId }) as const;
	const retry = config.retryAfterSeconds;

	app.get('/api/status', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		return relay.getStats();
	});

	app.get('/api/workers', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		return relay.workerLoad();
	});

	app.get('/api/broadcasts', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		return Promise.all([...relay.broadcasts.values()].map((b) => b.getStats()));
	});

	app.post('/api/broadcasts', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
		const empty = request.body === undefined && !type;
		if (!empty && type !== 'application/json') {
			return reply.code(415).header('accept', 'application/json').send({ error: 'ERR_UNSUPPORTED_MEDIA_TYPE', message: 'send the broadcast options as Content-Type: application/json (or no body at all)' });
		}
		try {
			const options = empty ? {} : parseBody(createBroadcastBody, request.body, 'broadcast options');
			const broadcast = await creator.create(options);
			return reply.code(201).header('location', `/api/broadcasts/${broadcast.id}`).send(await broadcast.getStats());
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.get<Id>('/api/broadcasts/:id', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		try {
			return await relay.broadcast(request.params.id).getStats();
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.delete<Id>('/api/broadcasts/:id', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		try {
			await relay.deleteBroadcast(request.params.id);
			return reply.code(204).send();
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.post<Id>('/api/broadcasts/:id/rtp-ingest', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, ingest(request.params.id), 'ingest'))) return reply;
		try {
			const body = parseBody(rtpIngestBody, request.body, 'RTP ingest body');
			const broadcast = relay.broadcast(request.params.id);
			const endpoints = await broadcast.ingestRtp('sdp' in body ? { sdp: body.sdp } : body.streams);
			return reply.code(201).send({ endpoints });
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.post<Id>('/api/broadcasts/:id/pipe-ingest', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, ingest(request.params.id), 'ingest'))) return reply;
		try {
			const remote = parseBody(pipeOpenBody, request.body, 'pipe ingest body');
			const broadcast = relay.broadcast(request.params.id);
			const pipe = await broadcast.openPipeIngest(remote);
			const session = sessions.create('pipe', broadcast.id, () => pipe.close(), pipe);
			pipe.transport.observer.once('close', () => sessions.forget(session.id));
			const sessionUrl = `/api/broadcasts/${encodeURIComponent(broadcast.id)}/pipe-ingest/${session.id}`;
			return reply.code(201).header('location', sessionUrl).send({ sessionUrl, ip: pipe.ip, port: pipe.port });
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.post<{ Params: { id: string; session: string } }>('/api/broadcasts/:id/pipe-ingest/:session/producers', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, ingest(request.params.id), 'ingest'))) return reply;
		try {
			const session = sessions.get('pipe', request.params.id, request.params.session);
			if (!session) throw new NotFoundError('no such pipe ingest session; open one with POST .../pipe-ingest');
			const body = parseBody(pipeProduceBody, request.body, 'pipe producer body');
			const producer = await (session.data as PipeIngest).produce(body as never);
			return reply.code(201).send({ producerId: producer.id });
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.delete<{ Params: { id: string; session: string } }>('/api/broadcasts/:id/pipe-ingest/:session', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, ingest(request.params.id), 'ingest'))) return reply;
		const session = sessions.get('pipe', request.params.id, request.params.session);
		if (!session) return reply.code(404).send({ error: 'ERR_NOT_FOUND', message: 'no such pipe ingest session' });
		sessions.end(session.id);
		return reply.code(204).send();
	});
}
