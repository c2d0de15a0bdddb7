import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import type { Broadcast } from '../Broadcast.js';
import { CapacityExceededError, ConflictError } from '../errors.js';
import { pipeToRelay, type RelayPipe } from '../ingest/pipeToRelay.js';
import type { Logger } from '../logger.js';

/** One edge pulling a broadcast from this node: a pipe per published track, into the edge's pipe ingest. */
export interface ServedPull {
	readonly id: string;
	readonly broadcastId: string;
	/** The pulling node. */
	readonly node: string;
	readonly pipes: RelayPipe[];
}

export interface ServedPullsOptions {
	/** Most pulls of one broadcast this node serves. */
	maxPerBroadcast: number;
	/** Where this node's PipeTransports listen, and the IP they announce to the pulling node. */
	listenIp: ms.TransportListenIp;
	/** Ingest token for the pulling node's pipe-ingest API (the cluster shares its tokens). */
	token?: string;
	logger: Logger;
}

/**
 * The upstream side of edge pulls: for each pull, the broadcast's published
 * tracks (re-encoded at an origin, the pulled ones at an edge) are piped to the
 * pulling node with pipeToRelay(), the cross-host pipeToRouter that pipe
 * ingest already serves. Owns the pipes; closing a pull closes them and ends
 * the pipe-ingest sessions on the pulling node.
 */
export class ServedPulls {
	readonly #options: ServedPullsOptions;
	readonly #pulls = new Map<string, ServedPull>();

	constructor(options: ServedPullsOptions) {
		this.#options = options;
	}

	list(): ServedPull[] {
		return [...this.#pulls.values()];
	}

	of(broadcastId: string): ServedPull[] {
		return this.list().filter((p) => p.broadcastId === broadcastId);
	}

	/** Pipes every published track of `broadcast` to the node at `url`; the pull replaces one that node had of it. */
	async open(broadcast: Broadcast, node: { id: string; url: string }): Promise<ServedPull> {
		if (!broadcast.live) throw new ConflictError(`broadcast "${broadcast.id}" is not live here yet; pull again in a moment`);
		for (const old of this.of(broadcast.id).filter((p) => p.node === node.id)) await this.close(old.id);
		if (this.of(broadcast.id).length >= this.#options.maxPerBroadcast) {
			throw new CapacityExceededError(`this node serves its limit of ${this.#options.maxPerBroadcast} pulls of "${broadcast.id}" (maxEdgePulls); pull from an edge`);
		}
		const pipes: RelayPipe[] = [];
		try {
			for (const track of broadcast.fanOut.tracks) {
				pipes.push(
					await pipeToRelay({ router: track.router, producer: track.producer, relayUrl: node.url, broadcastId: broadcast.id, token: this.#options.token, listenIp: this.#options.listenIp }),
				);
			}
		} catch (error) {
			await Promise.all(pipes.map((p) => p.close()));
			throw error;
		}
		const pull: ServedPull = { id: randomUUID(), broadcastId: broadcast.id, node: node.id, pipes };
		this.#pulls.set(pull.id, pull);
		this.#options.logger.info({ broadcastId: broadcast.id, node: node.id, pullId: pull.id, tracks: pipes.length }, 'serving an edge pull');
		return pull;
	}

	/** Closes a pull: its pipes here, and (best effort) the pipe-ingest sessions on the pulling node. */
	async close(id: string): Promise<boolean> {
		const pull = this.#pulls.get(id);
		if (!pull) return false;
		this.#pulls.delete(id);
		await Promise.all(pull.pipes.map((p) => p.close()));
		this.#options.logger.info({ broadcastId: pull.broadcastId, node: pull.node, pullId: id }, 'edge pull closed');
		return true;
	}

	/** Closes every pull matching `which`. */
	async closeWhere(which: (pull: ServedPull) => boolean): Promise<void> {
		await Promise.all(this.list().filter(which).map((p) => this.close(p.id)));
	}

	async closeAll(): Promise<void> {
		await this.closeWhere(() => true);
	}
}
