import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { seededRandom } from '../../src/harness/LossyProxy.js';

/**
 * A UDP proxy between a WebRTC publisher and the relay that drops a share of the
 * publisher's media packets (RTP only: STUN, DTLS and RTCP pass, so the
 * connection comes up and NACKs get through). Seeded: a run can be repeated.
 */
export class IngestLossProxy {
	readonly #front: Socket;
	readonly #back: Socket;
	dropped = 0;
	forwarded = 0;

	private constructor(front: Socket, back: Socket, target: { ip: string; port: number }, drop: number, seed: number) {
		this.#front = front;
		this.#back = back;
		const random = seededRandom(seed);
		let publisher: RemoteInfo | undefined;
		front.on('message', (message, from) => {
			publisher = from;
			// SRTP media: version 2, and a payload type outside RTCP's 64-95 (RFC 5761).
			const media = message.length > 12 && message[0]! >> 6 === 2 && ((message[1]! & 0x7f) < 64 || (message[1]! & 0x7f) > 95);
			if (media && random() < drop) {
				this.dropped += 1;
				return;
			}
			if (media) this.forwarded += 1;
			back.send(message, target.port, target.ip);
		});
		back.on('message', (message) => {
			if (publisher) front.send(message, publisher.port, publisher.address);
		});
	}

	get port(): number {
		return this.#front.address().port;
	}

	static async start(target: { ip: string; port: number }, drop: number, seed = 7): Promise<IngestLossProxy> {
		const bind = async (): Promise<Socket> => {
			const socket = createSocket('udp4');
			await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
			return socket;
		};
		return new IngestLossProxy(await bind(), await bind(), target, drop, seed);
	}

	close(): void {
		this.#front.close();
		this.#back.close();
	}
}
