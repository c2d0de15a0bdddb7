import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/errors.js';
import { sendError, sendJsonError } from '../../src/service/httpErrors.js';

describe('HTTP error answers', () => {
	it("a relay error's message reaches the client; a bug's message (internals) does not", async () => {
		const app = Fastify();
		const bug = new TypeError("invalid IP '999.1.1.1' [method:router.createPlainTransport] at /srv/relay/node_modules/mediasoup");
		app.get('/text/bug', async (_request, reply) => sendError(reply, bug, 5));
		app.get('/json/bug', async (_request, reply) => sendJsonError(reply, bug, 5));
		app.get('/text/conflict', async (_request, reply) => sendError(reply, new ConflictError('broadcast "x" is live already'), 5));
		try {
			for (const url of ['/text/bug', '/json/bug']) {
				const response = await app.inject({ url });
				expect(response.statusCode).toBe(500);
				expect(response.body).toMatch(/internal error \(request [^)]+\); the relay's log has the details/);
				expect(response.body).not.toMatch(/999|mediasoup|\/srv/);
			}
			expect((await app.inject({ url: '/json/bug' })).json().error).toBe('ERR_INTERNAL');
			const conflict = await app.inject({ url: '/text/conflict' });
			expect(conflict.statusCode).toBe(409);
			expect(conflict.body).toBe('broadcast "x" is live already');
		} finally {
			await app.close();
		}
	});
});
