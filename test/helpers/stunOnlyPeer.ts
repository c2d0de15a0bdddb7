import { createHmac, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { crc32 } from 'node:zlib';

const MAGIC_COOKIE = 0x2112a442;

function attribute(type: number, value: Buffer): Buffer {
	const header = Buffer.alloc(4);
	header.writeUInt16BE(type, 0);
	header.writeUInt16BE(value.length, 2);
	const padding = Buffer.alloc((4 - (value.length % 4)) % 4);
	return Buffer.concat([header, value, padding]);
}

/** An ICE binding request (RFC 8445/5389) with USE-CANDIDATE, signed with the answerer's password and fingerprinted. */
export function bindingRequest(username: string, password: string): Buffer {
	const priority = Buffer.alloc(4);
	priority.writeUInt32BE(0x6e001eff, 0);
	const tieBreaker = randomBytes(8);
	let body = Buffer.concat([
		attribute(0x0006, Buffer.from(username)),
		attribute(0x0024, priority),
		attribute(0x0025, Buffer.alloc(0)),
		attribute(0x802a, tieBreaker),
	]);
	const header = Buffer.alloc(20);
	header.writeUInt16BE(0x0001, 0);
	header.writeUInt32BE(MAGIC_COOKIE, 4);
	randomBytes(12).copy(header, 8);
	// MESSAGE-INTEGRITY covers the message with the length counting it (24 bytes).
	header.writeUInt16BE(body.length + 24, 2);
	const integrity = createHmac('sha1', password).update(Buffer.concat([header, body])).digest();
	body = Buffer.concat([body, attribute(0x0008, integrity)]);
	// FINGERPRINT: CRC-32 of everything before it, length counting it (8 bytes), xor "STUN".
	header.writeUInt16BE(body.length + 8, 2);
	const fingerprint = Buffer.alloc(4);
	fingerprint.writeUInt32BE((crc32(Buffer.concat([header, body])) ^ 0x5354554e) >>> 0, 0);
	body = Buffer.concat([body, attribute(0x8028, fingerprint)]);
	header.writeUInt16BE(body.length, 2);
	return Buffer.concat([header, body]);
}

/**
 * A peer that does ICE and nothing else: it keeps sending signed binding
 * requests (as consent checks would) to the answer's first UDP candidate and
 * ignores everything it receives, DTLS included, so its DTLS never completes.
 */
export class StunOnlyPeer {
	readonly #socket: Socket = createSocket('udp4');
	#timer?: NodeJS.Timeout;
	received = 0;

	async start(answerSdp: string, intervalMs = 500): Promise<void> {
		const ufrag = /a=ice-ufrag:(\S+)/.exec(answerSdp)?.[1];
		const pwd = /a=ice-pwd:(\S+)/.exec(answerSdp)?.[1];
		const candidate = /a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/i.exec(answerSdp);
		if (!ufrag || !pwd || !candidate) throw new Error('answer has no ICE credentials or UDP candidate');
		const [ip, port] = [candidate[1]!, Number(candidate[2])];
		this.#socket.on('message', () => {
			this.received += 1;
		});
		await new Promise<void>((resolve) => this.#socket.bind(0, '127.0.0.1', resolve));
		const send = (): void => this.#socket.send(bindingRequest(`${ufrag}:stunonly`, pwd), port, ip);
		send();
		this.#timer = setInterval(send, intervalMs);
	}

	close(): void {
		clearInterval(this.#timer);
		this.#socket.close();
	}
}
