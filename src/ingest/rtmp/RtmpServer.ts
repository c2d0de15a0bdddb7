/**
 * The RTMP ingest's TCP server: one port, many publishers (each publish names
 * its broadcast). It owns its sessions and closes them with itself.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:net';
import { InvalidOptionError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { RtmpSession, type LiveSink, type RtmpPublishRequest } from './RtmpSession.js';

export interface RtmpServerOptions {
	/** Address to listen on. */
	host: string;
	/** TCP port; 0 picks a free one. */
	port: number;
	/** Decides on each publish (see RtmpSession). */
	onPublish(request: RtmpPublishRequest): Promise<LiveSink>;
	/** Most connections at once; more are closed at once. Default 64. */
	maxConnections?: number;
	/** A connection must be publishing within this long, ms. Default 10000. */
	publishTimeoutMs?: number;
	/** A connection that sends nothing this long is closed, ms. Default 10000. */
	idleTimeoutMs?: number;
	logger: Logger;
}

export class RtmpServer extends EventEmitter<{ '@close': [] }> {
	readonly #server: Server;
	readonly #sessions = new Map<string, RtmpSession>();
	readonly #logger: Logger;
	#closed = false;
	#port = 0;

	private constructor(server: Server, logger: Logger) {
		super();
		this.#server = server;
		this.#logger = logger;
	}

	static async create(options: RtmpServerOptions): Promise<RtmpServer> {
		const { host, port, onPublish, maxConnections = 64, publishTimeoutMs = 10_000, idleTimeoutMs = 10_000 } = options;
		const logger = options.logger.child({ module: 'RtmpServer' });
		const server = createServer();
		const rtmp = new RtmpServer(server, logger);
		server.on('connection', (socket) => {
			if (rtmp.#closed || rtmp.#sessions.size >= maxConnections) {
				logger.warn({ remote: socket.remoteAddress, open: rtmp.#sessions.size }, `RTMP connection refused: ${rtmp.#closed ? 'server closing' : `limit of ${maxConnections} connections reached`}`);
				socket.destroy();
				return;
			}
			const session = new RtmpSession(randomBytes(6).toString('hex'), socket, { onPublish, publishTimeoutMs, idleTimeoutMs, logger });
			rtmp.#sessions.set(session.id, session);
			session.once('@close', () => rtmp.#sessions.delete(session.id));
		});
		await new Promise<void>((resolve, reject) => {
			server.once('error', (error: NodeJS.ErrnoException) => {
				reject(
					error.code === 'EADDRINUSE'
						? new InvalidOptionError(`cannot listen for RTMP on ${host}:${port}: the port is in use; set rtmp.port (BROADCAST_RELAY_RTMP_PORT) to another, or stop what holds it`)
						: error,
				);
			});
			server.listen({ host, port }, () => resolve());
		});
		server.on('error', (error) => logger.error({ err: error }, 'RTMP server error'));
		const address = server.address();
		rtmp.#port = typeof address === 'object' && address ? address.port : port;
		logger.info({ host, port: rtmp.#port }, 'RTMP ingest listening');
		return rtmp;
	}

	get port(): number {
		return this.#port;
	}

	get closed(): boolean {
		return this.#closed;
	}

	/** Open connections (publishing or not yet). */
	get connections(): number {
		return this.#sessions.size;
	}

	/** Stops listening and closes every connection. Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
		for (const session of [...this.#sessions.values()]) session.close('server closing');
		await closed;
		this.emit('@close');
	}
}
