import type { Broadcast } from '../Broadcast.js';
import { CapacityExceededError, NotFoundError } from '../errors.js';
import type { BroadcastOptionsInput } from '../options.js';
import type { Relay } from '../Relay.js';

/**
 * How the service creates broadcasts: never more than `maxBroadcasts` on this
 * node (creations in flight count), and a WHIP publication that creates its
 * broadcast leaves nothing behind when the publish fails.
 */
export class BroadcastCreator {
	readonly #relay: Relay;
	readonly #max: number;
	#creating = 0;
	/** WHIP publications that are creating their broadcast, by id: a second POST for the id waits for the first. */
	readonly #publishing = new Map<string, Promise<unknown>>();

	constructor(relay: Relay, maxBroadcasts: number) {
		this.#relay = relay;
		this.#max = maxBroadcasts;
	}

	/** Creates a broadcast if this node has room; CapacityExceededError (503) when it has not. */
	async create(options: BroadcastOptionsInput): Promise<Broadcast> {
		if (this.#relay.broadcasts.size + this.#creating >= this.#max) {
			throw new CapacityExceededError(`this relay holds its limit of ${this.#max} broadcasts (maxBroadcasts); end one or try again later`);
		}
		this.#creating++;
		try {
			return await this.#relay.createBroadcast(options);
		} finally {
			this.#creating--;
		}
	}

	/**
	 * Runs `use` on broadcast `id`, creating it first when it does not exist
	 * and `autoCreate` is set. A broadcast created here is closed again when
	 * `use` fails, so a refused publish creates nothing that outlives it.
	 */
	async withBroadcast<T>(id: string, autoCreate: boolean, use: (broadcast: Broadcast) => Promise<T>): Promise<T> {
		// One creating publication per id at a time: a racing second POST then finds the broadcast (and gets 409 if it is
		// live), or finds nothing because the first one failed and creates it itself.
		while (this.#publishing.has(id)) await this.#publishing.get(id)!.catch(() => undefined);
		const existing = this.#relay.broadcasts.get(id);
		if (existing) return use(existing);
		if (!autoCreate) throw new NotFoundError(`no broadcast "${id}"; create it first with POST /api/broadcasts`);
		const attempt = (async () => {
			let broadcast: Broadcast;
			try {
				broadcast = await this.create({ id });
			} catch (error) {
				// Created meanwhile another way (POST /api/broadcasts): use that one, and leave it be if the publish fails.
				const raced = this.#relay.broadcasts.get(id);
				if (raced) return use(raced);
				throw error;
			}
			try {
				return await use(broadcast);
			} catch (error) {
				await broadcast.close().catch(() => undefined);
				throw error;
			}
		})();
		this.#publishing.set(id, attempt);
		try {
			return await attempt;
		} finally {
			this.#publishing.delete(id);
		}
	}
}
