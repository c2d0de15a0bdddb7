import { createSocket, type Socket } from 'node:dgram';
import { InvalidOptionError, PortRangeExhaustedError } from '../errors.js';

export interface PortPoolOptions {
	/** First port of the range (inclusive). */
	min: number;
	/** Last port of the range (inclusive). */
	max: number;
	/** Address the ports are checked on: where FFmpeg binds its sockets (loopback). */
	host: string;
	/**
	 * A second loopback address for the mediasoup transport that feeds FFmpeg (see
	 * acquireFeed). Default "127.0.0.2" (Linux routes all of 127.0.0.0/8 to loopback).
	 */
	feedHost?: string;
}

/** Two consecutive ports: even RTP, odd RTCP, the way FFmpeg's RTP protocol expects them. */
export interface PortPair {
	rtp: number;
	rtcp: number;
}

async function udpPortFree(host: string, port: number): Promise<boolean> {
	const socket = createSocket('udp4');
	return new Promise((resolve) => {
		socket.once('error', () => {
			socket.close();
			resolve(false);
		});
		socket.bind({ address: host, port, exclusive: true }, () => {
			socket.close(() => resolve(true));
		});
	});
}

/**
 * A pair for FFmpeg's RTP input, with the same port numbers reserved on `feedHost`
 * for its one legitimate sender. FFmpeg binds `host:rtp`/`host:rtcp` and connects
 * them to `feedHost:rtp`/`feedHost:rtcp` (its SDP demuxer connects each socket to
 * the SDP's address and its own port number), so the kernel drops every packet
 * from anyone else. The mediasoup transport that feeds FFmpeg binds `feedHost:rtp`
 * (rtcp-mux); the pool itself holds `feedHost:rtcp`, so nobody else can bind it
 * and send from there, and FFmpeg's receiver reports land somewhere instead of
 * bouncing back as ICMP errors on its connected RTCP socket.
 */
export interface FeedPorts extends PortPair {
	/** Where FFmpeg binds. */
	host: string;
	/** Where the feeding mediasoup transport binds, on port `rtp`. */
	feedHost: string;
}

/** Binds host:port for good (until closed), reading and dropping whatever arrives; undefined if the port is taken. */
async function holdUdpPort(host: string, port: number): Promise<Socket | undefined> {
	const socket = createSocket('udp4');
	return new Promise((resolve) => {
		socket.once('error', () => {
			socket.close();
			resolve(undefined);
		});
		socket.bind({ address: host, port, exclusive: true }, () => {
			socket.removeAllListeners('error');
			socket.unref();
			socket.on('error', () => undefined);
			socket.on('message', () => undefined);
			resolve(socket);
		});
	});
}

/**
 * Hands out UDP port pairs for FFmpeg's sockets from a configured range. The
 * pool owns the range: a pair is lent to one re-encoder until it gives it back,
 * and a port some other program holds is skipped.
 */
export class PortPool {
	readonly #options: PortPoolOptions;
	readonly #lent = new Set<number>();
	/** The feedHost RTCP port each feed lease holds, by RTP port. */
	readonly #guards = new Map<number, Socket>();
	#cursor: number;

	constructor(options: PortPoolOptions) {
		const { min, max } = options;
		if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1024 || max > 65535 || max - min < 1) {
			throw new InvalidOptionError(
				`port range ${min}-${max} is not valid; give two integers between 1024 and 65535 with min < max`,
			);
		}
		this.#options = options;
		// Start at a random pair: two relays on one host (or a relay restarting while its
		// old FFmpegs still exit) would otherwise both reach for the range's first pair.
		const firstEven = min + (min % 2);
		const pairs = Math.max(1, Math.floor((max - firstEven + 1) / 2));
		this.#cursor = firstEven + 2 * Math.floor(Math.random() * pairs);
	}

	get inUse(): number {
		return this.#lent.size * 2;
	}

	get capacity(): number {
		const firstEven = this.#options.min + (this.#options.min % 2);
		return Math.max(0, Math.floor((this.#options.max - firstEven + 1) / 2)) * 2;
	}

	/**
	 * Whether FFmpeg can still bind a lent pair. A pair is checked when it is lent, but
	 * FFmpeg binds it later (and again at every restart): another program may have
	 * taken a port in between, and FFmpeg would then fail to start on it for ever.
	 */
	async stillFree(pair: PortPair): Promise<boolean> {
		const { host } = this.#options;
		return (await udpPortFree(host, pair.rtp)) && (await udpPortFree(host, pair.rtcp));
	}

	/** Lends a free pair, or throws PortRangeExhaustedError. */
	async acquire(): Promise<PortPair> {
		return this.#acquire(async () => true);
	}

	/**
	 * Lends a pair for FFmpeg's RTP input that only the feeding transport can send to
	 * (see FeedPorts); release() it like any pair. Throws PortRangeExhaustedError.
	 */
	async acquireFeed(): Promise<FeedPorts> {
		const host = this.#options.host;
		const feedHost = this.#options.feedHost ?? '127.0.0.2';
		const pair = await this.#acquire(async ({ rtp, rtcp }) => {
			if (!(await udpPortFree(feedHost, rtp))) return false;
			const guard = await holdUdpPort(feedHost, rtcp);
			if (guard) this.#guards.set(rtp, guard);
			return Boolean(guard);
		});
		return { ...pair, host, feedHost };
	}

	async #acquire(alsoFree: (pair: PortPair) => Promise<boolean>): Promise<PortPair> {
		const { min, max, host } = this.#options;
		const firstEven = min + (min % 2);
		const pairs = Math.floor((max - firstEven + 1) / 2);
		for (let tried = 0; tried < pairs; tried++) {
			const rtp = this.#cursor;
			this.#cursor = rtp + 2 > max - 1 ? firstEven : rtp + 2;
			if (this.#lent.has(rtp)) continue;
			this.#lent.add(rtp);
			const pair = { rtp, rtcp: rtp + 1 };
			if ((await udpPortFree(host, rtp)) && (await udpPortFree(host, rtp + 1)) && (await alsoFree(pair))) return pair;
			this.#lent.delete(rtp);
		}
		throw new PortRangeExhaustedError(
			`no free UDP port pair left in ${min}-${max} on ${host} (${this.#lent.size} pairs lent); widen ffmpegPorts or close broadcasts`,
		);
	}

	/** Takes a pair back (and lets go of a feed lease's RTCP guard). */
	release(pair: PortPair): void {
		this.#guards.get(pair.rtp)?.close();
		this.#guards.delete(pair.rtp);
		this.#lent.delete(pair.rtp);
	}
}
