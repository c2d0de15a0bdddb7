import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import type { types as ms } from 'mediasoup';
import type { Broadcast } from '../Broadcast.js';
import { ClosedError, InvalidOptionError, InvalidRtpParametersError, NotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import { isRtcp } from '../rtp/packet.js';
import { buildSenderReport, parseRtcp } from '../rtp/rtcp.js';

export interface EdgeFeedOptions {
	/** The edge's broadcast (baseline mode), fed through the stable producers. */
	broadcast: Broadcast;
	/** Address the receiving sockets bind, and the one announced to the upstream. */
	listenIp: string;
	announcedIp?: string;
	/** The upstream ended one of its pipes on its own (it re-pulled, or its broadcast ended). */
	onUpstreamClosed(): void;
	logger: Logger;
}

/** One layer (encoding) of a stable producer, and where its packets come from now. */
interface Stream {
	readonly ssrc: number;
	readonly clockRate: number;
	/** The upstream SSRC mapped onto it now; its offsets are set from its first packet. */
	incoming?: number;
	started: boolean;
	seqOffset: number;
	tsOffset: number;
	last?: { seq: number; ts: number; at: number };
}

interface Track {
	readonly kind: ms.MediaKind;
	readonly producer: ms.Producer;
	readonly mimeType: string;
	readonly payloadType: number;
	readonly streams: Stream[];
	/** The session feeding it now. */
	session?: Session;
}

interface Session {
	readonly id: string;
	readonly socket: Socket;
	/** The upstream PipeTransport: RTP comes from there, keyframe requests go there. */
	readonly remote: { ip: string; port: number };
	readonly byIncoming: Map<number, { track: Track; stream: Stream }>;
	closed: boolean;
}

const PSFB = 206;
const PLI = 1;
const FIR = 4;

/**
 * What keeps an edge's viewers across a change of upstream: one producer per
 * kind on a DirectTransport of the edge broadcast's ingest router, whose SSRCs,
 * sequence numbers and timestamps stay continuous while the pipes feeding it
 * come and go. The upstream pipes into it with pipeToRelay() as into any pipe
 * ingest (the same two requests; see registerClusterRoutes); its packets arrive
 * on a UDP socket of this node, are rewritten onto the stable stream of their
 * layer and sent into the producer. Keyframe requests the producer gets from
 * the viewers go back up the pipe to the origin's re-encoder. The viewers'
 * consumers never see the switch, so they need no new offer.
 */
export class EdgeFeed {
	/** The capability in the receiving URLs: 128 random bits. */
	readonly key = randomBytes(16).toString('base64url');
	readonly #options: EdgeFeedOptions;
	readonly #transport: ms.DirectTransport;
	readonly #tracks = new Map<ms.MediaKind, Track>();
	readonly #sessions = new Map<string, Session>();
	readonly #bySsrc = new Map<number, { track: Track; stream: Stream }>();
	#closed = false;

	private constructor(options: EdgeFeedOptions, transport: ms.DirectTransport) {
		this.#options = options;
		this.#transport = transport;
		transport.on('rtcp', (packet) => this.#onRtcp(packet));
	}

	static async create(options: EdgeFeedOptions): Promise<EdgeFeed> {
		const transport = await options.broadcast.ingestRouter.createDirectTransport({ maxMessageSize: 262_144, appData: { broadcastId: options.broadcast.id, tier: 'edge-feed' } });
		return new EdgeFeed(options, transport);
	}

	get closed(): boolean {
		return this.#closed;
	}

	get kinds(): ms.MediaKind[] {
		return [...this.#tracks.keys()];
	}

	get sessions(): number {
		return this.#sessions.size;
	}

	/** The pipe-ingest request: a socket for the upstream PipeTransport at `remote` to send to. */
	async openSession(remote: { ip: string; port: number }): Promise<{ id: string; ip: string; port: number }> {
		if (this.#closed) throw new ClosedError('edge feed');
		if (typeof remote?.ip !== 'string' || !Number.isInteger(remote?.port) || remote.port < 1 || remote.port > 65535) {
			throw new InvalidOptionError('pipe ingest needs { ip, port } of the upstream PipeTransport');
		}
		const socket = createSocket(this.#options.listenIp.includes(':') ? 'udp6' : 'udp4');
		await new Promise<void>((resolve, reject) => {
			socket.once('error', reject);
			socket.bind(0, this.#options.listenIp, () => {
				socket.off('error', reject);
				resolve();
			});
		});
		socket.on('error', (error) => this.#options.logger.warn({ err: error }, 'edge feed socket error'));
		const session: Session = { id: randomBytes(12).toString('base64url'), socket, remote: { ip: remote.ip, port: remote.port }, byIncoming: new Map(), closed: false };
		socket.on('message', (packet, from) => {
			if (from.port === session.remote.port) this.#onPacket(session, packet);
		});
		this.#sessions.set(session.id, session);
		return { id: session.id, ip: this.#options.announcedIp ?? this.#options.listenIp, port: socket.address().port };
	}

	/** The producers request: maps the upstream consumer's layers onto the stable producer of its kind (made the first time). */
	async produce(sessionId: string, { kind, rtpParameters }: { kind: ms.MediaKind; rtpParameters: ms.RtpParameters }): Promise<ms.Producer> {
		const session = this.#sessions.get(sessionId);
		if (!session) throw new NotFoundError('no such pipe session; open one first');
		const codec = rtpParameters.codecs.find((c) => !/\/rtx$/i.test(c.mimeType));
		const encodings = rtpParameters.encodings ?? [];
		if (!codec || encodings.length === 0 || encodings.some((e) => typeof e.ssrc !== 'number')) {
			throw new InvalidRtpParametersError('the pipe needs a media codec and an SSRC per encoding');
		}
		let track = this.#tracks.get(kind);
		if (!track) track = await this.#newTrack(kind, codec, encodings);
		else if (track.mimeType.toLowerCase() !== codec.mimeType.toLowerCase() || track.streams.length !== encodings.length) {
			throw new InvalidRtpParametersError(`the new upstream sends ${kind} as ${codec.mimeType} with ${encodings.length} encodings, the edge's viewers take ${track.mimeType} with ${track.streams.length}; they must join again`);
		}
		for (const old of track.streams) old.incoming = undefined;
		encodings.forEach((encoding, i) => {
			const stream = track.streams[i]!;
			stream.incoming = encoding.ssrc!;
			stream.started = false;
			session.byIncoming.set(encoding.ssrc!, { track, stream });
		});
		track.session = session;
		if (kind === 'video') this.#requestKeyFrames(track);
		return track.producer;
	}

	async #newTrack(kind: ms.MediaKind, codec: ms.RtpCodecParameters, encodings: ms.RtpEncodingParameters[]): Promise<Track> {
		const streams: Stream[] = encodings.map(() => ({ ssrc: randomBytes(4).readUInt32BE(0) || 1, clockRate: codec.clockRate, started: false, seqOffset: 0, tsOffset: 0 }));
		const producer = await this.#transport.produce({
			kind,
			rtpParameters: {
				codecs: [{ ...codec, rtcpFeedback: (codec.rtcpFeedback ?? []).filter((fb) => fb.type !== 'transport-cc' && fb.type !== 'goog-remb') }],
				headerExtensions: [],
				encodings: encodings.map((e, i) => ({ ssrc: streams[i]!.ssrc, ...(e.scalabilityMode ? { scalabilityMode: e.scalabilityMode } : {}) })),
				rtcp: { cname: `edge-${this.#options.broadcast.id}`, reducedSize: true },
			},
		});
		const track: Track = { kind, producer, mimeType: codec.mimeType, payloadType: codec.payloadType, streams };
		this.#tracks.set(kind, track);
		for (const stream of streams) this.#bySsrc.set(stream.ssrc, { track, stream });
		try {
			await this.#options.broadcast.attach({ producer, router: this.#options.broadcast.ingestRouter });
		} catch (error) {
			this.#tracks.delete(kind);
			producer.close();
			throw error;
		}
		return track;
	}

	#onPacket(session: Session, packet: Buffer): void {
		if (session.closed || packet.length < 12 || packet[0]! >> 6 !== 2) return;
		// RTCP from the upstream shares the port (rtcp-mux).
		if (isRtcp(packet)) return this.#onUpstreamRtcp(session, packet);
		const mapped = session.byIncoming.get(packet.readUInt32BE(8));
		if (!mapped || mapped.track.session !== session || mapped.track.producer.closed) return;
		const { track, stream } = mapped;
		const seq = packet.readUInt16BE(2);
		const ts = packet.readUInt32BE(4);
		const now = performance.now();
		if (!stream.started) {
			// Continue where the last upstream stopped: the next sequence number, the time gone by on the clock.
			stream.seqOffset = stream.last ? (stream.last.seq + 1 - seq) & 0xffff : 0;
			stream.tsOffset = stream.last ? (stream.last.ts + Math.max(1, Math.round(((now - stream.last.at) * stream.clockRate) / 1000)) - ts) >>> 0 : 0;
			stream.started = true;
		}
		const outSeq = (seq + stream.seqOffset) & 0xffff;
		const outTs = (ts + stream.tsOffset) >>> 0;
		packet.writeUInt16BE(outSeq, 2);
		packet.writeUInt32BE(outTs, 4);
		packet.writeUInt32BE(stream.ssrc, 8);
		packet[1] = (packet[1]! & 0x80) | track.payloadType;
		stream.last = { seq: outSeq, ts: outTs, at: now };
		track.producer.send(packet);
	}

	/**
	 * The upstream's sender reports, onto the stable streams (their SSRC, their RTP time), as a pipe
	 * between routers carries them: the edge's viewers get reports that map RTP time to the origin's
	 * wall clock (audio and video lined up by it), and mediasoup aligns the layers of a simulcast
	 * producer by them when it switches a viewer.
	 */
	#onUpstreamRtcp(session: Session, packet: Buffer): void {
		if (this.#closed) return;
		for (const message of parseRtcp(packet)) {
			if (message.type !== 'sr') continue;
			const mapped = session.byIncoming.get(message.ssrc);
			if (!mapped || mapped.track.session !== session || !mapped.stream.started || mapped.track.producer.closed) continue;
			const { stream } = mapped;
			this.#transport.sendRtcp(buildSenderReport(stream.ssrc, message.ntpMs, (message.rtpTimestamp + stream.tsOffset) >>> 0, message.packetCount, message.octetCount));
		}
	}

	/** Keyframe requests for the stable producers (from the viewers): sent up the pipe for the layer's upstream SSRC. */
	#onRtcp(packet: Buffer): void {
		for (let offset = 0; offset + 12 <= packet.length; ) {
			const length = (packet.readUInt16BE(offset + 2) + 1) * 4;
			const type = packet[offset + 1];
			const format = packet[offset]! & 0x1f;
			if (type === PSFB && (format === PLI || format === FIR)) {
				const media = format === PLI ? packet.readUInt32BE(offset + 8) : offset + 16 <= packet.length ? packet.readUInt32BE(offset + 12) : 0;
				const mapped = this.#bySsrc.get(media);
				if (mapped?.stream.incoming !== undefined && mapped.track.session) this.#sendPli(mapped.track.session, mapped.stream.incoming);
			}
			offset += length;
		}
	}

	#requestKeyFrames(track: Track): void {
		if (!track.session) return;
		for (const stream of track.streams) if (stream.incoming !== undefined) this.#sendPli(track.session, stream.incoming);
	}

	#sendPli(session: Session, mediaSsrc: number): void {
		if (session.closed) return;
		const pli = Buffer.alloc(12);
		pli[0] = 0x80 | PLI;
		pli[1] = PSFB;
		pli.writeUInt16BE(2, 2);
		pli.writeUInt32BE(1, 4);
		pli.writeUInt32BE(mediaSsrc, 8);
		session.socket.send(pli, session.remote.port, session.remote.ip);
	}

	/** Ends a pipe session; `byUpstream`: the upstream ended it on its own. */
	closeSession(id: string, byUpstream: boolean): boolean {
		const session = this.#sessions.get(id);
		if (!session) return false;
		this.#sessions.delete(id);
		session.closed = true;
		session.socket.close();
		for (const track of this.#tracks.values()) if (track.session === session) track.session = undefined;
		if (byUpstream && !this.#closed) this.#options.onUpstreamClosed();
		return true;
	}

	/** Ends every pipe session (the edge drops its upstream); the stable producers stay. */
	closeSessions(): void {
		for (const id of [...this.#sessions.keys()]) this.closeSession(id, false);
	}

	/** Ends the sessions and the stable producers (their transport). Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		this.closeSessions();
		this.#transport.close();
	}
}
