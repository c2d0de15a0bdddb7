/**
 * One RTMP connection, server side: handshake, chunk stream, the commands a
 * publisher sends (connect, releaseStream, FCPublish, createStream, publish,
 * FCUnpublish, deleteStream), and its audio, video and data messages handed to
 * a sink as FLV tags. Playing is not offered. Input is bounded (message size,
 * buffered bytes, chunk streams, time to publish, silence) and anything that is
 * not RTMP closes the connection with a reason that is logged.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { RelayError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { Amf0Error, decodeAmf0, encodeAmf0, type Amf0Value } from '../live/amf0.js';
import { FLV_TAG_AUDIO, FLV_TAG_SCRIPT, FLV_TAG_VIDEO } from '../live/flv.js';
import { HANDSHAKE_SIZE, serverHandshake } from './handshake.js';

/** What a publisher asked for. */
export interface RtmpPublishRequest {
	/** The application from connect (`live`, or `live/keynote` when the key is the stream name). */
	app: string;
	/** The stream name from publish, without its query. */
	streamName: string;
	/** The query of the stream name (`keynote?key=…`), or of the tcUrl. */
	query: URLSearchParams;
	remoteAddress: string;
	/** Ends this connection (the publisher was replaced, or its broadcast's feed ended). */
	disconnect(reason: string): void;
}

/** Where a publishing session's media goes. */
export interface LiveSink {
	/** One FLV tag (audio 8, video 9, script data 18). Throwing closes the session with the error's message. */
	tag(type: number, timestampMs: number, body: Buffer): void;
	/** The session ended (its reason is logged by the session). Called once. */
	end(reason: string): void;
}

/** A publish the server will not take; its message goes to the log and, as the status description, to the client. */
export class PublishRefusedError extends RelayError {
	/** NetStream status code sent to an RTMP client. */
	readonly statusCode: string;
	constructor(message: string, statusCode = 'NetStream.Publish.BadName') {
		super('ERR_PUBLISH_REFUSED', message);
		this.name = 'PublishRefusedError';
		this.statusCode = statusCode;
	}
}

export interface RtmpSessionOptions {
	/** Decides on a publish: resolves with the sink for its media, or rejects (PublishRefusedError) to refuse it. */
	onPublish(request: RtmpPublishRequest): Promise<LiveSink>;
	/** The connection must be publishing within this long, ms. */
	publishTimeoutMs: number;
	/** A connection that sends nothing this long is closed, ms. */
	idleTimeoutMs: number;
	logger: Logger;
}

export interface RtmpSessionEvents {
	'@close': [];
}

/** Largest message accepted (a keyframe of a high-bitrate 4K stream is a few MB). */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** Bytes held in messages not yet complete, over every chunk stream. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
const MAX_CHUNK_STREAMS = 64;
const OUT_CHUNK_SIZE = 4096;
const WINDOW_ACK_SIZE = 5_000_000;
const MESSAGE_HEADER_SIZES = [11, 7, 3, 0] as const;

const TYPE_SET_CHUNK_SIZE = 1;
const TYPE_ABORT = 2;
const TYPE_ACK = 3;
const TYPE_USER_CONTROL = 4;
const TYPE_WINDOW_ACK_SIZE = 5;
const TYPE_SET_PEER_BANDWIDTH = 6;
const TYPE_DATA_AMF3 = 15;
const TYPE_COMMAND_AMF3 = 17;
const TYPE_DATA_AMF0 = 18;
const TYPE_COMMAND_AMF0 = 20;
const TYPE_AGGREGATE = 22;

/** Bytes that are not RTMP as this server takes it. */
class ProtocolError extends RelayError {
	constructor(message: string) {
		super('ERR_INVALID_RTMP', message);
		this.name = 'ProtocolError';
	}
}

interface ChunkStream {
	timestamp: number;
	/** The timestamp field of the last header (absolute after type 0, a delta after types 1 and 2), as FFmpeg reads it. */
	timestampField: number;
	extended: boolean;
	length: number;
	typeId: number;
	streamId: number;
	parts: Buffer[];
	received: number;
}

type State = 'c0' | 'c1' | 'c2' | 'chunks' | 'closed';

export class RtmpSession extends EventEmitter<RtmpSessionEvents> {
	readonly id: string;
	readonly remoteAddress: string;
	readonly #socket: Socket;
	readonly #options: RtmpSessionOptions;
	readonly #logger: Logger;
	#state: State = 'c0';
	#buffer: Buffer = Buffer.alloc(0);
	#inChunkSize = 128;
	/** Ours: RTMP's default until connect, where we announce OUT_CHUNK_SIZE. */
	#outChunkSize = 128;
	#chunkStreams = new Map<number, ChunkStream>();
	#pendingBytes = 0;
	#bytesIn = 0;
	#lastAck = 0;
	#peerWindow = 0;
	#app?: string;
	#tcUrl?: string;
	#publishStreamId?: number;
	#sink?: LiveSink;
	#deciding = false;
	#publishTimer?: NodeJS.Timeout;

	constructor(id: string, socket: Socket, options: RtmpSessionOptions) {
		super();
		this.id = id;
		this.#socket = socket;
		this.#options = options;
		this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
		this.#logger = options.logger.child({ module: 'RtmpSession', session: id, remote: this.remoteAddress });
		socket.setNoDelay(true);
		socket.setTimeout(options.idleTimeoutMs, () => this.close(`sent nothing for ${options.idleTimeoutMs} ms`, 'warn'));
		socket.on('data', (data) => this.#onData(data));
		socket.on('error', (error) => this.close(`socket error: ${error.message}`, 'info'));
		socket.on('close', () => this.close('connection closed by the client', 'info'));
		this.#publishTimer = setTimeout(() => this.close(`did not start publishing within ${options.publishTimeoutMs} ms`, 'warn'), options.publishTimeoutMs);
	}

	get closed(): boolean {
		return this.#state === 'closed';
	}

	get publishing(): boolean {
		return this.#sink !== undefined;
	}

	/** Ends the connection and the sink. Idempotent. */
	close(reason = 'closed by the server', level: 'info' | 'warn' = 'info', { flush = false } = {}): void {
		if (this.#state === 'closed') return;
		this.#state = 'closed';
		clearTimeout(this.#publishTimer);
		this.#buffer = Buffer.alloc(0);
		this.#chunkStreams.clear();
		this.#socket.removeAllListeners('data');
		this.#socket.on('error', () => undefined);
		if (flush) {
			// Let a refusal's status message reach the client, then make sure the socket goes.
			this.#socket.end();
			setTimeout(() => this.#socket.destroy(), 1000).unref();
		} else {
			this.#socket.destroy();
		}
		this.#logger[level]({ reason, bytesIn: this.#bytesIn }, 'RTMP connection closed');
		const sink = this.#sink;
		this.#sink = undefined;
		try {
			sink?.end(reason);
		} catch (error) {
			this.#logger.error({ err: error }, 'RTMP sink failed to end');
		}
		this.emit('@close');
		this.removeAllListeners();
	}

	#onData(data: Buffer): void {
		if (this.#state === 'closed') return;
		this.#bytesIn += data.length;
		this.#buffer = this.#buffer.length === 0 ? data : Buffer.concat([this.#buffer, data]);
		try {
			this.#parse();
			this.#acknowledge();
		} catch (error) {
			const reason = error instanceof ProtocolError || error instanceof Amf0Error ? `not valid RTMP: ${error.message}` : `input refused: ${(error as Error).message}`;
			this.close(reason, 'warn');
		}
	}

	#parse(): void {
		for (;;) {
			if (this.#state === 'closed') return;
			if (this.#state === 'c0') {
				if (this.#buffer.length < 1) return;
				const version = this.#buffer[0]!;
				if (version !== 3) throw new ProtocolError(`first byte 0x${version.toString(16).padStart(2, '0')} is not RTMP version 3 (is this RTMPS, HTTP or another protocol?)`);
				this.#buffer = this.#buffer.subarray(1);
				this.#state = 'c1';
			} else if (this.#state === 'c1') {
				if (this.#buffer.length < HANDSHAKE_SIZE) return;
				this.#write(serverHandshake(Buffer.from(this.#buffer.subarray(0, HANDSHAKE_SIZE))));
				this.#buffer = this.#buffer.subarray(HANDSHAKE_SIZE);
				this.#state = 'c2';
			} else if (this.#state === 'c2') {
				// C2 echoes S1; clients differ in what they put there, and nothing depends on it.
				if (this.#buffer.length < HANDSHAKE_SIZE) return;
				this.#buffer = this.#buffer.subarray(HANDSHAKE_SIZE);
				this.#state = 'chunks';
			} else if (!this.#readChunk()) {
				return;
			}
		}
	}

	/** Reads one chunk if it is all there; false when more bytes are needed. */
	#readChunk(): boolean {
		const b = this.#buffer;
		if (b.length < 1) return false;
		const fmt = b[0]! >> 6;
		let csid = b[0]! & 0x3f;
		let at = 1;
		if (csid === 0) {
			if (b.length < 2) return false;
			csid = 64 + b[1]!;
			at = 2;
		} else if (csid === 1) {
			if (b.length < 3) return false;
			csid = 64 + b[1]! + b[2]! * 256;
			at = 3;
		}
		const headerSize = MESSAGE_HEADER_SIZES[fmt as 0 | 1 | 2 | 3];
		if (b.length < at + headerSize) return false;
		let stream = this.#chunkStreams.get(csid);
		if (!stream) {
			if (fmt !== 0) throw new ProtocolError(`chunk stream ${csid} starts without a full (type 0) header`);
			if (this.#chunkStreams.size >= MAX_CHUNK_STREAMS) throw new ProtocolError(`more than ${MAX_CHUNK_STREAMS} chunk streams`);
			stream = { timestamp: 0, timestampField: 0, extended: false, length: 0, typeId: 0, streamId: 0, parts: [], received: 0 };
		}
		const starting = stream.received === 0;
		if (!starting && fmt !== 3) throw new ProtocolError(`a type ${fmt} header in the middle of a message on chunk stream ${csid}`);
		let field = stream.timestampField;
		let length = stream.length;
		let typeId = stream.typeId;
		let streamId = stream.streamId;
		if (fmt <= 2) field = b.readUIntBE(at, 3);
		if (fmt <= 1) {
			length = b.readUIntBE(at + 3, 3);
			typeId = b[at + 6]!;
		}
		if (fmt === 0) streamId = b.readUInt32LE(at + 7);
		at += headerSize;
		const extended = fmt <= 2 ? field === 0xffffff : stream.extended;
		if (extended) {
			if (b.length < at + 4) return false;
			if (fmt <= 2 || starting) field = b.readUInt32BE(at);
			at += 4;
		}
		if (length > MAX_MESSAGE_BYTES) throw new ProtocolError(`a message of ${length} bytes is larger than ${MAX_MESSAGE_BYTES}`);
		const size = Math.min(this.#inChunkSize, length - stream.received);
		if (b.length < at + size) return false;

		// The whole chunk is here: commit the header.
		this.#chunkStreams.set(csid, stream);
		if (starting) {
			stream.timestamp = fmt === 0 ? field : stream.timestamp + field;
			stream.timestampField = field;
			stream.extended = extended;
			stream.length = length;
			stream.typeId = typeId;
			stream.streamId = streamId;
		}
		if (size > 0) {
			this.#pendingBytes += size;
			if (this.#pendingBytes > MAX_PENDING_BYTES) throw new ProtocolError(`more than ${MAX_PENDING_BYTES} bytes in unfinished messages`);
			stream.parts.push(Buffer.from(b.subarray(at, at + size)));
			stream.received += size;
		}
		this.#buffer = b.subarray(at + size);
		if (stream.received >= stream.length) {
			const body = stream.parts.length === 1 ? stream.parts[0]! : Buffer.concat(stream.parts);
			this.#pendingBytes -= stream.received;
			stream.parts = [];
			stream.received = 0;
			this.#onMessage(stream.typeId, stream.streamId, stream.timestamp >>> 0, body);
		}
		return true;
	}

	#onMessage(typeId: number, streamId: number, timestamp: number, body: Buffer): void {
		switch (typeId) {
			case TYPE_SET_CHUNK_SIZE: {
				const size = body.length >= 4 ? body.readUInt32BE(0) & 0x7fffffff : 0;
				if (size < 1 || size > MAX_MESSAGE_BYTES) throw new ProtocolError(`chunk size ${size} is out of range`);
				this.#inChunkSize = size;
				return;
			}
			case TYPE_ABORT: {
				const stream = body.length >= 4 ? this.#chunkStreams.get(body.readUInt32BE(0)) : undefined;
				if (stream) {
					this.#pendingBytes -= stream.received;
					stream.parts = [];
					stream.received = 0;
				}
				return;
			}
			case TYPE_WINDOW_ACK_SIZE:
				if (body.length >= 4) this.#peerWindow = body.readUInt32BE(0);
				return;
			case TYPE_USER_CONTROL:
				// Ping request: answer with a ping response carrying the same time.
				if (body.length >= 6 && body.readUInt16BE(0) === 6) this.#sendControl(TYPE_USER_CONTROL, Buffer.concat([Buffer.from([0, 7]), body.subarray(2, 6)]));
				return;
			case TYPE_ACK:
			case TYPE_SET_PEER_BANDWIDTH:
				return;
			case TYPE_COMMAND_AMF0:
			case TYPE_COMMAND_AMF3:
				this.#onCommand(streamId, decodeAmf0(typeId === TYPE_COMMAND_AMF3 ? body.subarray(1) : body));
				return;
			case FLV_TAG_AUDIO:
			case FLV_TAG_VIDEO:
			case TYPE_DATA_AMF0:
			case TYPE_DATA_AMF3:
				if (streamId !== this.#publishStreamId || !this.#sink) return;
				this.#sink.tag(typeId === TYPE_DATA_AMF3 ? FLV_TAG_SCRIPT : typeId, timestamp, typeId === TYPE_DATA_AMF3 ? body.subarray(1) : body);
				return;
			case TYPE_AGGREGATE:
				if (streamId === this.#publishStreamId && this.#sink) this.#onAggregate(timestamp, body);
				return;
			default:
				return;
		}
	}

	/** An aggregate message: FLV tags back to back, timed relative to the first. */
	#onAggregate(timestamp: number, body: Buffer): void {
		let at = 0;
		let first: number | undefined;
		while (at + 11 <= body.length && this.#sink) {
			const size = body.readUIntBE(at + 1, 3);
			if (at + 11 + size > body.length) throw new ProtocolError('an aggregate message is cut short');
			const own = (body.readUIntBE(at + 4, 3) | (body[at + 7]! << 24)) >>> 0;
			first ??= own;
			const type = body[at]! & 0x1f;
			if (type === FLV_TAG_AUDIO || type === FLV_TAG_VIDEO || type === FLV_TAG_SCRIPT) this.#sink.tag(type, (timestamp + own - first) >>> 0, body.subarray(at + 11, at + 11 + size));
			at += 11 + size + 4;
		}
	}

	#onCommand(streamId: number, values: Amf0Value[]): void {
		const [name, transactionId] = values;
		if (typeof name !== 'string') throw new ProtocolError('a command without a name');
		const tid = typeof transactionId === 'number' ? transactionId : 0;
		switch (name) {
			case 'connect': {
				const command = values[2];
				const object = command && typeof command === 'object' && !Array.isArray(command) && !(command instanceof Date) ? command : {};
				if (typeof object.app !== 'string') throw new ProtocolError('connect without an app');
				this.#app = object.app;
				this.#tcUrl = typeof object.tcUrl === 'string' ? object.tcUrl : undefined;
				const windowAck = Buffer.alloc(4);
				windowAck.writeUInt32BE(WINDOW_ACK_SIZE);
				this.#sendControl(TYPE_WINDOW_ACK_SIZE, windowAck);
				this.#sendControl(TYPE_SET_PEER_BANDWIDTH, Buffer.concat([windowAck, Buffer.from([2])]));
				const chunkSize = Buffer.alloc(4);
				chunkSize.writeUInt32BE(OUT_CHUNK_SIZE);
				this.#sendControl(TYPE_SET_CHUNK_SIZE, chunkSize);
				this.#outChunkSize = OUT_CHUNK_SIZE;
				this.#sendCommand(0, encodeAmf0('_result', tid, { fmsVer: 'FMS/3,0,1,123', capabilities: 31 }, { level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection succeeded.', objectEncoding: 0 }));
				return;
			}
			case 'createStream':
				this.#sendCommand(0, encodeAmf0('_result', tid, null, 1));
				return;
			case 'publish':
				this.#onPublish(streamId, values);
				return;
			case 'FCUnpublish':
			case 'deleteStream':
			case 'closeStream':
				if (this.#sink) this.close(`publisher ended the stream (${name})`);
				return;
			case 'play':
				this.#refuse(streamId, 'this server takes publishers only; watch over WHEP', 'NetStream.Play.Failed');
				return;
			default:
				// releaseStream, FCPublish, getStreamLength…: nothing to answer that publishers wait for.
				return;
		}
	}

	#onPublish(streamId: number, values: Amf0Value[]): void {
		if (this.#app === undefined) throw new ProtocolError('publish before connect');
		if (this.#sink || this.#deciding) throw new ProtocolError('a second publish on one connection');
		const raw = values[3];
		if (typeof raw !== 'string' || raw === '') {
			this.#refuse(streamId, 'publish without a stream name; use rtmp://host/live/<broadcast>?key=<key> or stream key <broadcast>?key=<key>');
			return;
		}
		const [streamName, query = ''] = raw.split('?', 2) as [string, string?];
		const tcQuery = this.#tcUrl?.includes('?') ? this.#tcUrl.slice(this.#tcUrl.indexOf('?') + 1) : '';
		const appQuery = this.#app.includes('?') ? this.#app.slice(this.#app.indexOf('?') + 1) : '';
		const request: RtmpPublishRequest = {
			app: this.#app.split('?')[0]!,
			streamName,
			query: new URLSearchParams([tcQuery, appQuery, query].filter(Boolean).join('&')),
			remoteAddress: this.remoteAddress,
			disconnect: (reason) => this.close(reason),
		};
		this.#deciding = true;
		clearTimeout(this.#publishTimer);
		this.#options.onPublish(request).then(
			(sink) => {
				this.#deciding = false;
				if (this.closed) {
					sink.end('connection closed before publishing started');
					return;
				}
				this.#sink = sink;
				this.#publishStreamId = streamId;
				this.#sendStatus(streamId, 'status', 'NetStream.Publish.Start', `${request.app}/${streamName} is now published.`);
				// With app live/<broadcast>, the stream name is the key: it stays out of the log.
				this.#logger.info({ app: request.app, stream: request.app.includes('/') ? '[redacted]' : streamName }, 'RTMP publish started');
			},
			(error: unknown) => {
				this.#deciding = false;
				const refused = error instanceof PublishRefusedError ? error : new PublishRefusedError(`publish failed: ${(error as Error).message}`, 'NetStream.Publish.Failed');
				this.#refuse(streamId, refused.message, refused.statusCode);
			},
		);
	}

	/** Tells the client why (an error status it logs), then closes. */
	#refuse(streamId: number, reason: string, code = 'NetStream.Publish.BadName'): void {
		if (this.closed) return;
		this.#sendStatus(streamId, 'error', code, reason);
		this.close(`publish refused: ${reason}`, 'warn', { flush: true });
	}

	#acknowledge(): void {
		if (this.#peerWindow > 0 && this.#bytesIn - this.#lastAck >= this.#peerWindow) {
			this.#lastAck = this.#bytesIn;
			const ack = Buffer.alloc(4);
			ack.writeUInt32BE(this.#bytesIn >>> 0);
			this.#sendControl(TYPE_ACK, ack);
		}
	}

	#sendControl(typeId: number, body: Buffer): void {
		this.#sendMessage(2, typeId, 0, body);
	}

	#sendCommand(streamId: number, body: Buffer): void {
		this.#sendMessage(3, TYPE_COMMAND_AMF0, streamId, body);
	}

	#sendStatus(streamId: number, level: string, code: string, description: string): void {
		this.#sendMessage(5, TYPE_COMMAND_AMF0, streamId, encodeAmf0('onStatus', 0, null, { level, code, description }));
	}

	/** One message as chunks: a type 0 header, then type 3 continuation headers. */
	#sendMessage(csid: number, typeId: number, streamId: number, body: Buffer): void {
		const header = Buffer.alloc(12);
		header[0] = csid;
		header.writeUIntBE(0, 1, 3);
		header.writeUIntBE(body.length, 4, 3);
		header[7] = typeId;
		header.writeUInt32LE(streamId, 8);
		const parts: Buffer[] = [header];
		for (let at = 0; at < body.length; at += this.#outChunkSize) {
			if (at > 0) parts.push(Buffer.from([0xc0 | csid]));
			parts.push(body.subarray(at, at + this.#outChunkSize));
		}
		this.#write(Buffer.concat(parts));
	}

	#write(data: Buffer): void {
		if (this.#state !== 'closed' && !this.#socket.destroyed) this.#socket.write(data);
	}
}
