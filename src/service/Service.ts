import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import { pino } from 'pino';
import { createRelay, type Relay } from '../Relay.js';
import type { Logger } from '../logger.js';
import type { ServiceConfig } from './config.js';
import { startDemoBroadcast, type DemoBroadcast } from './demo.js';
import { registerApi } from './routes/api.js';
import { createMetrics, registerOperations } from './routes/operations.js';
import { registerSdpEndpoints } from './routes/sdpEndpoints.js';
import { SessionRegistry } from './sessions.js';

const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

export interface Service {
	readonly app: FastifyInstance;
	readonly relay: Relay;
	readonly sessions: SessionRegistry;
	/** http://host:port the service listens on. */
	readonly url: string;
	readonly demo?: DemoBroadcast;
	/** Stops accepting requests, ends every session, stops FFmpeg and the workers. Idempotent. */
	close(): Promise<void>;
}

/**
 * The broadcast service: a relay behind an HTTP server with WHIP ingest, WHEP
 * playback, the JSON API, metrics, health checks and the web pages.
 */
export async function startService(config: ServiceConfig, options: { logger?: Logger } = {}): Promise<Service> {
	const logger = options.logger ?? pino({ level: config.logLevel, base: { app: 'broadcast-relay' } });
	const relay = await createRelay({ ...config.relay, logger });
	const sessions = new SessionRegistry();
	const app: FastifyInstance = Fastify({
		loggerInstance: logger.child({ module: 'http' }) as FastifyBaseLogger,
		bodyLimit: config.bodyLimit,
	});

	if (config.ingestTokens.length === 0) logger.warn('no ingest tokens configured: anyone who reaches this service can publish');
	if (config.adminTokens.length === 0) logger.warn('no admin tokens configured: the admin API is open');

	app.addContentTypeParser(['application/sdp', 'application/trickle-ice-sdpfrag'], { parseAs: 'string' }, (_request, body, done) =>
		done(null, body),
	);

	const metrics = createMetrics(relay, sessions);
	const requests = new Counter({
		name: 'broadcast_relay_http_requests_total',
		help: 'HTTP requests by route, method and status',
		labelNames: ['route', 'method', 'status'],
		registers: [metrics.registry],
	});
	registerOperations(app, relay, metrics, requests);
	registerSdpEndpoints(app, { relay, sessions, config });
	registerApi(app, { relay, sessions, config });

	const pages = {
		dashboard: await readFile(`${PUBLIC_DIR}dashboard.html`, 'utf8'),
		watch: await readFile(`${PUBLIC_DIR}watch.html`, 'utf8'),
		publish: await readFile(`${PUBLIC_DIR}publish.html`, 'utf8'),
		common: await readFile(`${PUBLIC_DIR}common.js`, 'utf8').catch(() => ''),
	};
	app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(pages.dashboard));
	app.get('/watch/:broadcast', async (_request, reply) => reply.type('text/html; charset=utf-8').send(pages.watch));
	app.get('/publish/:broadcast', async (_request, reply) => reply.type('text/html; charset=utf-8').send(pages.publish));
	app.get('/static/common.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(pages.common));

	let demo: DemoBroadcast | undefined;
	try {
		await app.listen({ host: config.host, port: config.port });
		if (config.demo) demo = await startDemoBroadcast(relay, config.demo, logger);
	} catch (error) {
		await app.close();
		await relay.close();
		throw error;
	}
	const address = app.server.address();
	const port = typeof address === 'object' && address ? address.port : config.port;
	const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
	logger.info({ url, workers: config.relay.workers, demo: config.demo || undefined }, 'broadcast-relay listening');

	let closing: Promise<void> | undefined;
	return {
		app,
		relay,
		sessions,
		url,
		demo,
		close() {
			closing ??= (async () => {
				logger.info('shutting down: no new requests, ending sessions, stopping FFmpeg and workers');
				const closed = app.close();
				sessions.endAll();
				await demo?.close();
				await relay.close();
				await closed;
			})();
			return closing;
		},
	};
}
