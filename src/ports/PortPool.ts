import { createSocket } from 'node:dgram';
import { InvalidOptionError, PortRangeExhaustedError } from '../errors.js';

export interface PortPoolOptions {
	/** First port of the range (inclusive). */
	min: number;
	/** Last port of the range (inclusive). */
	max: number;
	/** Address the ports are checked on. */
	host: string;
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
 * Hands out UDP port pairs for FFmpeg's sockets from a configured range. The
 * pool owns the range: a pair is lent to one re-encoder until it gives it back,
 * and a port some other program holds is skipped.
 */
export class PortPool {
	readonly #options: PortPoolOptions;
	readonly #lent = new Set<number>();
	#cursor: number;

	constructor(options: PortPoolOptions) {
		const { min, max } = options;
		if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1024 || max > 65535 || max - min < 1) {
			throw new InvalidOptionError(
				`port range ${min}-${max} is not valid; give two integers between 1024 and 65535 with min < max`,
			);
		}
		this.#options = options;
		this.#cursor = min + (min % 2);
	}

	get inUse(): number {
		return this.#lent.size * 2;
	}

	get capacity(): number {
		const firstEven = this.#options.min + (this.#options.min % 2);
		return Math.max(0, Math.floor((this.#options.max - firstEven + 1) / 2)) * 2;
	}

	/** Lends a free pair, or throws PortRangeExhaustedError. */
	async acquire(): Promise<PortPair> {
		const { min, max, host } = this.#options;
		const firstEven = min + (min % 2);
		const pairs = Math.floor((max - firstEven + 1) / 2);
		for (let tried = 0; tried < pairs; tried++) {
			const rtp = this.#cursor;
			this.#cursor = rtp + 2 > max - 1 ? firstEven : rtp + 2;
			if (this.#lent.has(rtp)) continue;
			this.#lent.add(rtp);
			if ((await udpPortFree(host, rtp)) && (await udpPortFree(host, rtp + 1))) return { rtp, rtcp: rtp + 1 };
			this.#lent.delete(rtp);
		}
		throw new PortRangeExhaustedError(
			`no free UDP port pair left in ${min}-${max} on ${host} (${this.#lent.size} pairs lent); widen ffmpegPorts or close broadcasts`,
		);
	}

	release(pair: PortPair): void {
		this.#lent.delete(pair.rtp);
	}
}
