import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { InvalidOptionError } from '../../errors.js';
import { formatIssues } from '../../options.js';
import type { Relay } from '../../Relay.js';
import type { AccessPolicy } from '../../auth/AccessPolicy.js';
import { authorizeRequest } from '../auth.js';
import type { ServiceConfig } from '../config.js';
import { sendJsonError } from '../httpErrors.js';

/** `{ "maxLayer": 1 }`; null lifts a viewer's own limit. */
export const maxLayerBody = z.strictObject({ maxLayer: z.number().int().min(0).max(3).nullable() });

export function parseMaxLayer(body: unknown): number | null {
	const parsed = maxLayerBody.safeParse(body);
	if (!parsed.success) throw new InvalidOptionError(`layer body: ${formatIssues(parsed.error, 'body')}; send {"maxLayer": <layer, 0 = lowest>} (null: no limit)`);
	return parsed.data.maxLayer;
}

/**
 * Operators' control of a broadcast's simulcast ladder: the ceiling for every
 * viewer, each viewer's own maximum, and who is on which layer. (A WHEP viewer
 * sets its own maximum on its session URL: see sdpEndpoints.)
 */
export function registerLayerRoutes(app: FastifyInstance, { relay, config, access }: { relay: Relay; config: ServiceConfig; access: AccessPolicy }): void {
	const admin = { action: 'admin' } as const;
	const retry = config.retryAfterSeconds;

	app.get<{ Params: { id: string } }>('/api/broadcasts/:id/viewers', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		try {
			return [...relay.broadcast(request.params.id).viewers.values()].map((viewer) => viewer.info);
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.put<{ Params: { id: string } }>('/api/broadcasts/:id/max-layer', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		try {
			const broadcast = relay.broadcast(request.params.id);
			const layer = parseMaxLayer(request.body);
			await broadcast.setMaxLayer(layer ?? broadcast.layerCount - 1);
			return { maxLayer: broadcast.maxLayer };
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});

	app.put<{ Params: { id: string; viewer: string } }>('/api/broadcasts/:id/viewers/:viewer/max-layer', async (request, reply) => {
		if (!(await authorizeRequest(request, reply, access, admin, 'admin'))) return reply;
		try {
			const broadcast = relay.broadcast(request.params.id);
			await broadcast.setViewerMaxLayer(request.params.viewer, parseMaxLayer(request.body) ?? undefined);
			return broadcast.viewers.get(request.params.viewer)?.info.layers ?? {};
		} catch (error) {
			return sendJsonError(reply, error, retry);
		}
	});
}
