import { createSocket, type Socket } from 'node:dgram';
import { isRtcp, parseRtp, type RtpPacket } from '../../rtp/packet.js';
import { parseRtcp, type RtcpMessage } from '../../rtp/rtcp.js';
import type { TrackWiring } from './protocol.js';

/** A kernel buffer deep enough for a second of 1080p on a starved core: the engine reads in bursts then. */
const INPUT_BUFFER_BYTES = 4 * 1024 * 1024;

export interface TrackSocketHandlers {
	/** RTP of the broadcaster's track, from the feeding consumer. */
	rtp(packet: RtpPacket, now: number): void;
	/** RTCP from the feeding consumer (sender reports). */
	inputRtcp?(messages: RtcpMessage[]): void;
	/** RTCP from the re-encoded producer's transport: viewers' PLI/FIR end up here. */
	outputRtcp(messages: RtcpMessage[]): void;
}

/**
 * The engine side of one track's UDP: the input socket the feeding consumer sends
 * to (RTP and RTCP muxed; connected, so only that consumer is heard), and the two
 * output sockets the re-encoded producer's transport accepts (RTP; RTCP, where
 * mediasoup sends keyframe requests). Every socket is connected, so `send` needs
 * no address and nobody else's datagrams are read.
 */
export class TrackSockets {
	readonly #input: Socket;
	readonly #outputRtp: Socket;
	readonly #outputRtcp: Socket;
	#closed = false;

	private constructor(input: Socket, outputRtp: Socket, outputRtcp: Socket) {
		this.#input = input;
		this.#outputRtp = outputRtp;
		this.#outputRtcp = outputRtcp;
	}

	/** Binds and connects all three; on failure (a port taken) closes what it opened and throws. */
	static async open(wiring: TrackWiring, handlers: TrackSocketHandlers): Promise<TrackSockets> {
		const opened: Socket[] = [];
		try {
			const { input, output } = wiring;
			const inputSocket = await bindConnected(input.host, input.port, input.remoteHost, input.remotePort, opened);
			const rtp = await bindConnected(output.host, output.rtpPort, output.remoteHost, output.remoteRtpPort, opened);
			const rtcp = await bindConnected(output.host, output.rtcpPort, output.remoteHost, output.remoteRtcpPort, opened);
			try {
				inputSocket.setRecvBufferSize(INPUT_BUFFER_BYTES);
			} catch {
				// The kernel caps it (net.core.rmem_max); the default still works, with less slack.
			}
			inputSocket.on('message', (data) => {
				if (isRtcp(data)) {
					handlers.inputRtcp?.(parseRtcp(data));
					return;
				}
				const packet = parseRtp(data);
				if (packet) handlers.rtp(packet, performance.now());
			});
			rtcp.on('message', (data) => handlers.outputRtcp(parseRtcp(data)));
			// The producer transport sends nothing on the RTP socket but may, in principle: drain it.
			rtp.on('message', () => undefined);
			return new TrackSockets(inputSocket, rtp, rtcp);
		} catch (error) {
			for (const socket of opened) socket.close();
			throw error;
		}
	}

	/** RTCP (NACK, PLI) to the feeding consumer. */
	sendInputRtcp(data: Buffer): void {
		if (!this.#closed) this.#input.send(data);
	}

	sendRtp(data: Buffer): void {
		if (!this.#closed) this.#outputRtp.send(data);
	}

	sendOutputRtcp(data: Buffer): void {
		if (!this.#closed) this.#outputRtcp.send(data);
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const socket of [this.#input, this.#outputRtp, this.#outputRtcp]) {
			try {
				socket.close();
			} catch {
				// Already closed by an error.
			}
		}
	}
}

function bindConnected(host: string, port: number, remoteHost: string, remotePort: number, opened: Socket[]): Promise<Socket> {
	const socket = createSocket({ type: 'udp4' });
	opened.push(socket);
	return new Promise((resolve, reject) => {
		const onError = (error: Error): void => reject(Object.assign(error, { port }));
		socket.once('error', onError);
		socket.bind({ address: host, port, exclusive: true }, () => {
			socket.connect(remotePort, remoteHost, () => {
				socket.off('error', onError);
				// A connected UDP socket gets ECONNREFUSED when the far side is not bound yet (a
				// transport being replaced); that is not fatal for a media socket.
				socket.on('error', () => undefined);
				resolve(socket);
			});
		});
	});
}
