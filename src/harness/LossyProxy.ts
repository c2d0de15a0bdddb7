import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export interface Impairment {
	/** Share of relay→viewer packets dropped, 0..1. */
	drop: number;
	/** Added one-way delay, ms. */
	delayMs: number;
	/** Extra random delay up to this many ms (reorders packets when it exceeds their spacing). */
	jitterMs: number;
	/**
	 * Link capacity relay→viewer, kbit/s: packets leave one after another at this rate
	 * (a bottleneck's queue), and a packet that would wait longer than `queueMs` is
	 * dropped (tail drop), as at a congested router. Default: unlimited.
	 */
	rateKbps?: number;
	/** Longest a packet queues behind the rate cap, ms. Default 200. */
	queueMs?: number;
}

const DEFAULT_QUEUE_MS = 200;

/** A small seeded PRNG (mulberry32), so a lossy run can be repeated exactly. */
export function seededRandom(seed: number): () => number {
	let state = seed >>> 0;
	return () => {
		state = (state + 0x6d2b79f5) >>> 0;
		let t = state;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/**
 * A loopback UDP proxy between one WebRTC viewer and the relay: the viewer is
 * told (in the SDP answer) to connect to the proxy, which forwards both ways
 * and impairs the relay→viewer direction: drops, delays and reorders, from a
 * seeded random source, and optionally caps its rate (a bottleneck link).
 */
export class LossyProxy {
	readonly #front: Socket;
	readonly #back: Socket;
	readonly #random: () => number;
	readonly #timers = new Set<NodeJS.Timeout>();
	#viewer?: RemoteInfo;
	/** When the capped link has sent everything queued so far (performance.now() ms). */
	#linkFreeAt = 0;
	#rateKbps: number | undefined;
	dropped = 0;
	/** Of `dropped`, packets tail-dropped at the rate cap's full queue. */
	queueDropped = 0;
	forwarded = 0;
	/** Bytes forwarded to the viewer. */
	bytesForwarded = 0;

	private constructor(front: Socket, back: Socket, target: { ip: string; port: number }, impairment: Impairment, seed: number) {
		this.#front = front;
		this.#back = back;
		this.#random = seededRandom(seed);
		this.#rateKbps = impairment.rateKbps;
		const queueMs = impairment.queueMs ?? DEFAULT_QUEUE_MS;
		front.on('message', (msg, rinfo) => {
			this.#viewer = rinfo;
			back.send(msg, target.port, target.ip);
		});
		back.on('message', (msg) => {
			const viewer = this.#viewer;
			if (!viewer) return;
			if (this.#random() < impairment.drop) {
				this.dropped += 1;
				return;
			}
			let queued = 0;
			if (this.#rateKbps !== undefined) {
				const now = performance.now();
				const start = Math.max(now, this.#linkFreeAt);
				if (start - now > queueMs) {
					this.dropped += 1;
					this.queueDropped += 1;
					return;
				}
				// IP and UDP headers count against the link as well: 28 bytes.
				this.#linkFreeAt = start + ((msg.length + 28) * 8) / this.#rateKbps;
				queued = this.#linkFreeAt - now;
			}
			const delay = queued + impairment.delayMs + this.#random() * impairment.jitterMs;
			const timer = setTimeout(() => {
				this.#timers.delete(timer);
				this.forwarded += 1;
				this.bytesForwarded += msg.length;
				front.send(msg, viewer.port, viewer.address);
			}, delay);
			this.#timers.add(timer);
		});
	}

	/** Changes the rate cap (undefined: unlimited), e.g. a viewer whose link gets worse. */
	setRate(kbps: number | undefined): void {
		this.#rateKbps = kbps;
	}

	get port(): number {
		return this.#front.address().port;
	}

	static async start(target: { ip: string; port: number }, impairment: Impairment, seed: number): Promise<LossyProxy> {
		const bind = async (): Promise<Socket> => {
			const socket = createSocket('udp4');
			await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
			return socket;
		};
		return new LossyProxy(await bind(), await bind(), target, impairment, seed);
	}

	/** The relay's UDP address in an SDP answer (its ICE-lite host candidate). */
	static targetOf(answer: string): { ip: string; port: number } {
		const candidate = /a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/.exec(answer);
		if (!candidate) throw new Error('answer has no UDP host candidate');
		return { ip: candidate[1]!, port: Number(candidate[2]) };
	}

	/** The answer with its UDP candidate pointed at the proxy (and TCP candidates removed). */
	static redirectAnswer(answer: string, proxyPort: number): string {
		const { ip, port } = LossyProxy.targetOf(answer);
		return answer
			.split('\r\n')
			.filter((line) => !/^a=candidate:.* tcp /.test(line))
			.join('\r\n')
			.replaceAll(` ${ip} ${port} typ host`, ` 127.0.0.1 ${proxyPort} typ host`)
			.replace(/^(m=\w+ )\d+/gm, `$1${proxyPort}`);
	}

	close(): void {
		for (const timer of this.#timers) clearTimeout(timer);
		this.#timers.clear();
		this.#front.close();
		this.#back.close();
	}
}
