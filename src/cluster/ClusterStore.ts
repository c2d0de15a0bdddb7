import { Redis } from 'ioredis';
import { InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { ClusterUnavailableError } from './errors.js';
import type { NodeRecord } from './placement.js';

/** What nodes tell each other through Redis pub/sub. */
export type ClusterEvent =
	| { type: 'origin'; broadcast: string; node: string }
	| { type: 'ended'; broadcast: string; node: string };

export interface ClusterStoreOptions {
	redisUrl: string;
	/** Key prefix, so that one Redis can hold several clusters. Default "broadcast-relay:". */
	prefix?: string;
	logger: Logger;
	/** Called with each event another node (or this one) published. */
	onEvent(event: ClusterEvent): void;
	/** Called when Redis is reachable again after it was not (it may have lost every key). */
	onReconnect?(): void;
}

// Set-if-absent or renew-if-mine, in one step: returns the holder after the call.
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1] end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`;
// Takes a lease from a holder found dead (or from nobody): returns the holder after the call.
const TAKE_OVER = `
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return ARGV[2] end
return v`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * The cluster's state in Redis: each node's record under a lease (a key with
 * a TTL, renewed by the heartbeat), each broadcast's origin lease (set if
 * absent, renewed by its holder), and an event channel. Commands fail at once
 * while Redis is unreachable (ClusterUnavailableError); ioredis reconnects in
 * the background and the subscriber resubscribes.
 */
export class ClusterStore {
	readonly #redis: Redis;
	readonly #subscriber: Redis;
	readonly #prefix: string;
	readonly #logger: Logger;
	readonly #channel: string;
	#closed = false;

	private constructor(options: ClusterStoreOptions) {
		this.#prefix = options.prefix ?? 'broadcast-relay:';
		this.#channel = `${this.#prefix}events`;
		this.#logger = options.logger;
		const common = {
			lazyConnect: true,
			connectTimeout: 1000,
			// Reconnect for ever, at most a second apart: a node outlives a Redis restart.
			retryStrategy: (attempt: number) => Math.min(100 * attempt, 1000),
		};
		// No queue while disconnected: a placement fails at once (503) instead of waiting for Redis.
		this.#redis = new Redis(options.redisUrl, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
		this.#subscriber = new Redis(options.redisUrl, { ...common, maxRetriesPerRequest: null });
		let down = false;
		const onError = (error: Error) => {
			if (down) return;
			down = true;
			this.#logger.warn({ err: error.message }, 'Redis unreachable; serving what this node has, refusing new cluster placements');
		};
		this.#redis.on('error', onError);
		this.#subscriber.on('error', () => undefined);
		this.#redis.on('ready', () => {
			if (down) {
				this.#logger.info('Redis reachable again');
				options.onReconnect?.();
			}
			down = false;
		});
		this.#subscriber.on('message', (_channel: string, message: string) => {
			try {
				options.onEvent(JSON.parse(message) as ClusterEvent);
			} catch (error) {
				this.#logger.warn({ err: error, message }, 'ignoring a cluster event that is not valid');
			}
		});
	}

	/** Connects both connections; throws InvalidOptionError when Redis cannot be reached at start. */
	static async connect(options: ClusterStoreOptions): Promise<ClusterStore> {
		const store = new ClusterStore(options);
		try {
			await store.#redis.connect();
			await store.#subscriber.connect();
			await store.#subscriber.subscribe(store.#channel);
		} catch (error) {
			store.close();
			// At start this is the environment's fault, like a port in use: a configuration error (CLI exit 2).
			throw new InvalidOptionError(`cannot reach Redis at ${redactRedisUrl(options.redisUrl)} (${(error as Error).message}); start Redis, or fix --cluster / BROADCAST_RELAY_CLUSTER`);
		}
		return store;
	}

	get connected(): boolean {
		return this.#redis.status === 'ready';
	}

	#key(...parts: string[]): string {
		return this.#prefix + parts.join(':');
	}

	async #run<T>(what: string, command: () => Promise<T>): Promise<T> {
		if (this.#closed) throw new ClusterUnavailableError('the cluster store is closed');
		try {
			return await command();
		} catch (error) {
			throw new ClusterUnavailableError(`the cluster's Redis is unreachable (${what}: ${(error as Error).message}); try again shortly`, { cause: error });
		}
	}

	/** Writes this node's record under a lease of `leaseMs`. */
	async heartbeat(record: NodeRecord, leaseMs: number): Promise<void> {
		await this.#run('heartbeat', async () => {
			await this.#redis.multi().set(this.#key('node', record.id), JSON.stringify(record), 'PX', leaseMs).sadd(this.#key('nodes'), record.id).exec();
		});
	}

	/** Every node whose lease is current; ids whose lease ran out are dropped from the index. */
	async nodes(): Promise<NodeRecord[]> {
		return this.#run('nodes', async () => {
			const ids = await this.#redis.smembers(this.#key('nodes'));
			if (ids.length === 0) return [];
			const values = await this.#redis.mget(ids.map((id) => this.#key('node', id)));
			const gone = ids.filter((_, i) => values[i] === null);
			if (gone.length > 0) await this.#redis.srem(this.#key('nodes'), ...gone);
			return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as NodeRecord]));
		});
	}

	async node(id: string): Promise<NodeRecord | undefined> {
		return this.#run('node', async () => {
			const value = await this.#redis.get(this.#key('node', id));
			return value === null ? undefined : (JSON.parse(value) as NodeRecord);
		});
	}

	/** Drops this node's record (graceful shutdown). */
	async deregister(id: string): Promise<void> {
		await this.#run('deregister', async () => {
			await this.#redis.multi().del(this.#key('node', id)).srem(this.#key('nodes'), id).exec();
		});
	}

	/** Takes the origin lease of a broadcast if free, renews it if `node` holds it; resolves with the holder. */
	async acquireOrigin(broadcast: string, node: string, leaseMs: number): Promise<string> {
		return this.#run('origin lease', async () => String(await this.#redis.eval(ACQUIRE, 1, this.#key('origin', broadcast), node, leaseMs)));
	}

	/** Takes the origin lease from `from` (found dead); resolves with the holder after. */
	async takeOverOrigin(broadcast: string, from: string, to: string, leaseMs: number): Promise<string> {
		return this.#run('origin take-over', async () => String(await this.#redis.eval(TAKE_OVER, 1, this.#key('origin', broadcast), from, to, leaseMs)));
	}

	async releaseOrigin(broadcast: string, node: string): Promise<void> {
		await this.#run('origin release', async () => void (await this.#redis.eval(RELEASE, 1, this.#key('origin', broadcast), node)));
	}

	async origin(broadcast: string): Promise<string | undefined> {
		return this.#run('origin', async () => (await this.#redis.get(this.#key('origin', broadcast))) ?? undefined);
	}

	/** Every origin lease: broadcast id → node. */
	async origins(): Promise<Map<string, string>> {
		return this.#run('origins', async () => {
			const out = new Map<string, string>();
			const prefix = this.#key('origin', '');
			let cursor = '0';
			do {
				const [next, keys] = await this.#redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 200);
				cursor = next;
				if (keys.length === 0) continue;
				const values = await this.#redis.mget(keys);
				keys.forEach((key, i) => values[i] !== null && out.set(key.slice(prefix.length), values[i]!));
			} while (cursor !== '0');
			return out;
		});
	}

	async publish(event: ClusterEvent): Promise<void> {
		await this.#run('publish', async () => void (await this.#redis.publish(this.#channel, JSON.stringify(event))));
	}

	/** Closes both connections. Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#redis.disconnect();
		this.#subscriber.disconnect();
	}
}

/** A Redis URL without its password, for messages. */
export function redactRedisUrl(url: string): string {
	try {
		const parsed = new URL(url);
		if (parsed.password) parsed.password = '***';
		return parsed.toString();
	} catch {
		return url;
	}
}
