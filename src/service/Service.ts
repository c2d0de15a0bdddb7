import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { Counter } from 'prom-client';
import { pino } from 'pino';
import { AccessPolicy } from '../auth/AccessPolicy.js';
import type { ClusterNode } from '../cluster/ClusterNode.js';
import { registerClusterRoutes, startClusterNode } from '../cluster/service.js';
import { InvalidOptionError } from '../errors.js';
import { createRelay, type Relay } from '../Relay.js';
import type { Logger } from '../logger.js';
import { authorizeRequest } from './auth.js';
import { BroadcastCreator } from './broadcasts.js';
import type { ServiceConfig } from './config.js';
import { startDemoBroadcast, type DemoBroadcast } from './demo.js';
import { startLiveIngest, type LiveIngestService } from './liveIngest.js';
import { registerApi } from './routes/api.js';
import { registerLayerRoutes } from './routes/layers.js';
import { createMetrics, redactUrl, registerOperations } from './routes/operations.js';
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
	/** This node of the cluster (config.cluster set). */
	readonly cluster?: ClusterNode;
	/** Who may do what (static and signed tokens): RTMP/SRT ingest checks stream keys with access.authorizeStreamKey(). */
	readonly access: AccessPolicy;
	/** RTMP and SRT ingest, when enabled (rtmp.enabled, srt.enabled). */
	readonly liveIngest?: LiveIngestService;
	/** Stops accepting requests, ends every session, stops FFmpeg and the workers. Idempotent. */
	close(): Promise<void>;
}

/** Why the HTTP server could not listen, as a configuration error that says what to change. */
function listenError(error: unknown, host: string, port: number): unknown {
	const code = (error as NodeJS.ErrnoException).code;
	const where = `${host}:${port}`;
	switch (code) {
		case 'EADDRINUSE':
			return new InvalidOptionError(`cannot listen on ${where}: the port is in use; pick another with --port or BROADCAST_RELAY_PORT, or stop what holds it`);
		case 'EACCES':
			return new InvalidOptionError(`cannot listen on ${where}: permission denied; use a port above 1023 or grant the capability to bind low ports`);
		case 'EADDRNOTAVAIL':
			return new InvalidOptionError(`cannot listen on ${where}: no interface of this machine has that address; set --host to one of its addresses or 0.0.0.0`);
		case 'ENOTFOUND':
		case 'EAI_AGAIN':
		case 'EAI_NONAME':
			return new InvalidOptionError(`cannot listen on ${where}: host "${host}" does not resolve; set --host to an IP address of this machine`);
		default:
			return error;
	}
}

/**
 * The broadcast service: a relay behind an HTTP server with WHIP ingest, WHEP
 * playback, the JSON API, metrics, health checks and the web pages.
 */
export async function startService(config: ServiceConfig, options: { logger?: Logger } = {}): Promise<Service> {
	const logger = options.logger ?? pino({ level: config.logLevel, base: { app: 'broadcast-relay' } });
	// Before anything is started: a JWKS file that cannot be read is a configuration error with nothing to undo.
	const access = await AccessPolicy.create(config);
	const relay = await createRelay({ ...config.relay, logger });
	const sessions = new SessionRegistry();
	const app: FastifyInstance = Fastify({
		// Any request fastify itself logs (errors) goes through this serializer too: no ?token=… in a log line.
		loggerInstance: logger.child({ module: 'http' }, { serializers: { req: (request: { method?: string; url?: string }) => ({ method: request.method, url: redactUrl(request.url ?? '') }) } }) as FastifyBaseLogger,
		bodyLimit: config.bodyLimit,
		// fastify's defaults are no limit at all: a client that sends headers and then a body one byte a minute would hold its
		// connection for ever. Idle sockets are closed; whole requests must arrive in time (Node checks that every few seconds).
		connectionTimeout: config.requestTimeoutMs,
		requestTimeout: config.requestTimeoutMs,
		// Requests are logged once, in the onResponse hook, with secrets redacted (see registerOperations).
		logController: new LogController({ disableRequestLogging: true }),
	});

	if (access.isOpen({ action: 'publish', broadcastId: '*' })) logger.warn('no ingest tokens configured: anyone who reaches this service can publish');
	if (access.isOpen({ action: 'admin' })) logger.warn('no admin tokens configured: the admin API is open');

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
	registerOperations(app, relay, metrics, requests, access);
	const creator = new BroadcastCreator(relay, config.maxBroadcasts);
	// Cluster mode: the node registers in Redis before it serves (a Redis it cannot reach at start is a configuration error).
	const cluster = config.cluster
		? await startClusterNode({ config, relay, sessions, creator, logger }).catch(async (error: unknown) => {
				await relay.close();
				throw error;
			})
		: undefined;
	if (cluster) {
		registerClusterRoutes(app, cluster, { retryAfterSeconds: config.retryAfterSeconds, authorize: (request, reply) => authorizeRequest(request, reply, access, { action: 'admin' }, 'admin') });
		cluster.registerMetrics(metrics.registry);
	}
	registerSdpEndpoints(app, { relay, sessions, config, creator, access, cluster });
	registerApi(app, { relay, sessions, config, creator, access });
	registerLayerRoutes(app, { relay, config, access });

	const pages = {
		dashboard: await readFile(`${PUBLIC_DIR}dashboard.html`, 'utf8'),
		watch: await readFile(`${PUBLIC_DIR}watch.html`, 'utf8'),
		publish: await readFile(`${PUBLIC_DIR}publish.html`, 'utf8'),
		common: await readFile(`${PUBLIC_DIR}common.js`, 'utf8').catch(() => ''),
	};
	// A page opened with ?token=… must not hand it on in a Referer header.
	const page = (html: string) => async (_request: unknown, reply: FastifyReply) =>
		reply.type('text/html; charset=utf-8').header('referrer-policy', 'no-referrer').send(html);
	app.get('/', page(pages.dashboard));
	app.get('/watch/:broadcast', page(pages.watch));
	app.get('/publish/:broadcast', page(pages.publish));
	app.get('/static/common.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(pages.common));

	let demo: DemoBroadcast | undefined;
	let liveIngest: LiveIngestService | undefined;
	try {
		await app.listen({ host: config.host, port: config.port }).catch((error: unknown) => {
			throw listenError(error, config.host, config.port);
		});
		if (config.demo) demo = await startDemoBroadcast(relay, config.demo, logger);
		liveIngest = await startLiveIngest({ config, relay, creator, access, logger });
	} catch (error) {
		await demo?.close();
		await app.close();
		await cluster?.close();
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
		cluster,
		access,
		liveIngest,
		close() {
			closing ??= (async () => {
				logger.info('shutting down: no new requests, ending sessions, stopping FFmpeg and workers');
				const closed = app.close();
				// Leaves the cluster first: origin leases released and edges told, pulls closed.
				await cluster?.close();
				sessions.endAll();
				await liveIngest?.close();
				await demo?.close();
				await relay.close();
				await closed;
			})();
			return closing;
		},
	};
}
