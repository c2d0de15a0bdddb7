/**
 * A broadcast fed by RTMP or SRT publishers: the relay's own plain-RTP sender
 * into the broadcast's RTP ingest (one H264 and one Opus stream), so the whole
 * re-encoder tier works on it as on any RTP source. Publishers come and go
 * under it: when one drops, the feed waits `graceMs` for the next before it
 * ends its sources, and a publisher that comes back in time continues the same
 * streams (same SSRCs, sequence numbers and timestamps carried on), so viewers
 * keep their sessions and see video again from the new publisher's first keyframe.
 *
 * Video starts at each publisher's first keyframe (every keyframe carries SPS
 * and PPS in-band): RTMP and SRT have no way to ask the encoder for one, so
 * nothing downstream should need to.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Broadcast } from '../../Broadcast.js';
import { ClosedError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { H264Packetizer, RtpSender } from '../../rtp/packetize.js';
// Type only: node-av (native, large) is loaded when the first AAC frame comes, not by whoever imports the relay.
import type { AacToOpus } from './AacToOpus.js';
import type { AudioFrame, LiveMedia, VideoAccessUnit } from './flv.js';

const VIDEO_PAYLOAD_TYPE = 102;
const AUDIO_PAYLOAD_TYPE = 111;
/** Access units held while the first keyframe is awaited are none; after it, a backlog beyond this is dropped. */
const MAX_AUDIO_BACKLOG = 50;
/** 20 ms at 48 kHz: one Opus packet's RTP timestamp step (AacToOpus makes 20 ms packets). */
const OPUS_FRAME_SAMPLES = 960;

export interface LiveFeedOptions {
	broadcast: Broadcast;
	/** Address of the relay's RTP ingest transports as this process reaches them (its listen IP; loopback for a wildcard). */
	host: string;
	/** How long a dropped publisher has to come back before the feed ends its sources, ms. */
	graceMs: number;
	/** Opus bitrate for the transcoded AAC. */
	audioBitrateKbps: number;
	logger: Logger;
}

export interface LiveFeedStats {
	/** Publishers that fed it, the current one included. */
	publishers: number;
	/** Publishers that came back within the grace period. */
	resumed: number;
	videoFramesSent: number;
	/** Video frames of a publisher before its first keyframe, not sent. */
	videoFramesDropped: number;
	audioPacketsSent: number;
	audioDecodeErrors: number;
	/** Whether a publisher is attached now. */
	publishing: boolean;
}

export interface LiveFeedEvents {
	/** The feed ended (grace period over, its broadcast or sources gone, or closed). */
	'@close': [{ reason: string }];
}

/** One publisher's turn on the feed. Media from a publisher that was replaced or detached goes nowhere. */
export interface FeedPublisher {
	readonly label: string;
	/** Ends the publisher's connection (it was replaced, or the feed ended). */
	disconnect(reason: string): void;
}

interface VideoOut {
	port: number;
	producerId: string;
	sender: RtpSender;
	packetizer: H264Packetizer;
}

interface AudioOut {
	port: number;
	producerId: string;
	sender: RtpSender;
}

interface Turn {
	publisher: FeedPublisher;
	/** The first keyframe's decode time, ms, and the RTP timestamp it was given. */
	videoOrigin?: { ms: number; rtp: number };
	audio?: { transcoder: AacToOpus; config: Buffer; chain: Promise<void>; backlog: number };
	lastMediaAt: number;
}

export class LiveFeed extends EventEmitter<LiveFeedEvents> {
	readonly broadcast: Broadcast;
	readonly #options: LiveFeedOptions;
	readonly #logger: Logger;
	readonly #socket: Socket;
	readonly #video: VideoOut;
	readonly #audio: AudioOut;
	#turn?: Turn;
	#graceTimer?: NodeJS.Timeout;
	#closed = false;
	/** Last RTP timestamps sent and when, to carry the clocks on across publishers. */
	#lastVideo?: { rtp: number; at: number };
	#audioRtp = randomInt(0, 0x7fffffff);
	#lastAudioAt?: number;
	readonly #stats = { publishers: 0, resumed: 0, videoFramesSent: 0, videoFramesDropped: 0, audioPacketsSent: 0, audioDecodeErrors: 0 };
	readonly #onBroadcastClose = (): void => this.close('the broadcast ended');
	readonly #onSourceClosed = ({ kind, reason }: { kind: string; reason: string }): void => this.close(`the broadcast's ${kind} source closed (${reason})`);

	private constructor(options: LiveFeedOptions, socket: Socket, video: VideoOut, audio: AudioOut) {
		super();
		this.broadcast = options.broadcast;
		this.#options = options;
		this.#logger = options.logger.child({ module: 'LiveFeed', broadcastId: options.broadcast.id });
		this.#socket = socket;
		this.#video = video;
		this.#audio = audio;
		this.broadcast.once('@close', this.#onBroadcastClose);
		this.broadcast.on('sourceclosed', this.#onSourceClosed);
	}

	/** Opens the broadcast's RTP ingest (H264 and Opus) and the socket that feeds it. Leaves nothing behind on failure. */
	static async open(options: LiveFeedOptions): Promise<LiveFeed> {
		const videoSsrc = randomInt(1, 0x7fffffff);
		const audioSsrc = videoSsrc + 1;
		const socket = createSocket('udp4');
		socket.on('error', (error) => options.logger.warn({ err: error, broadcastId: options.broadcast.id }, 'live feed socket error'));
		try {
			await new Promise<void>((resolve, reject) => {
				socket.once('error', reject);
				socket.bind({ address: options.host, port: 0 }, () => {
					socket.off('error', reject);
					resolve();
				});
			});
			// The ingest router takes Constrained Baseline; the engine decodes whatever profile comes (publishers send Main or High).
			const endpoints = await options.broadcast.ingestRtp([
				{ codec: 'H264', payloadType: VIDEO_PAYLOAD_TYPE, ssrc: videoSsrc },
				{ codec: 'opus', payloadType: AUDIO_PAYLOAD_TYPE, ssrc: audioSsrc },
			]);
			const video = endpoints.find((e) => e.kind === 'video')!;
			const audio = endpoints.find((e) => e.kind === 'audio')!;
			return new LiveFeed(
				options,
				socket,
				{ port: video.port, producerId: video.producerId, sender: new RtpSender({ ssrc: videoSsrc, payloadType: VIDEO_PAYLOAD_TYPE, firstSequenceNumber: randomInt(0, 0xffff) }), packetizer: new H264Packetizer(1200) },
				{ port: audio.port, producerId: audio.producerId, sender: new RtpSender({ ssrc: audioSsrc, payloadType: AUDIO_PAYLOAD_TYPE, firstSequenceNumber: randomInt(0, 0xffff) }) },
			);
		} catch (error) {
			socket.close();
			throw error;
		}
	}

	get closed(): boolean {
		return this.#closed;
	}

	get stats(): LiveFeedStats {
		return { ...this.#stats, publishing: this.#turn !== undefined };
	}

	/** The attached publisher, if any. */
	get publisher(): FeedPublisher | undefined {
		return this.#turn?.publisher;
	}

	/** When the attached publisher last sent media (performance.now() ms), if it is attached. */
	get lastMediaAt(): number | undefined {
		return this.#turn?.lastMediaAt;
	}

	/** A publisher takes over the feed; one attached already is disconnected. */
	attach(publisher: FeedPublisher): void {
		if (this.#closed) throw new ClosedError(`the live feed of broadcast ${this.broadcast.id}`);
		const previous = this.#turn;
		// Detached first: its disconnect ends its session, whose end() must not start a grace period.
		this.#turn = undefined;
		if (previous) this.#endTurn(previous, `replaced by ${publisher.label}`);
		const resumed = this.#graceTimer !== undefined;
		clearTimeout(this.#graceTimer);
		this.#graceTimer = undefined;
		this.#stats.publishers += 1;
		if (resumed) this.#stats.resumed += 1;
		this.#turn = { publisher, lastMediaAt: performance.now() };
		this.#logger.info({ publisher: publisher.label, resumed }, resumed ? 'publisher back within the grace period: the broadcast continues' : 'publisher attached');
	}

	/** The publisher's connection ended: the feed waits graceMs for another before it ends. */
	detach(publisher: FeedPublisher, reason: string): void {
		const turn = this.#turn;
		if (this.#closed || turn?.publisher !== publisher) return;
		this.#endTurn(turn);
		this.#turn = undefined;
		this.#logger.info({ publisher: publisher.label, reason, graceMs: this.#options.graceMs }, 'publisher gone; waiting for it to come back');
		this.#graceTimer = setTimeout(() => this.close(`no publisher came back within ${this.#options.graceMs} ms`), this.#options.graceMs);
	}

	/** Media from `publisher`; ignored unless it is the one attached. */
	push(publisher: FeedPublisher, media: LiveMedia): void {
		const turn = this.#turn;
		if (this.#closed || turn?.publisher !== publisher) return;
		turn.lastMediaAt = performance.now();
		if (media.kind === 'video') this.#sendVideo(turn, media);
		else this.#sendAudio(turn, media);
	}

	#sendVideo(turn: Turn, unit: VideoAccessUnit): void {
		if (!turn.videoOrigin) {
			if (!unit.keyframe) {
				this.#stats.videoFramesDropped += 1;
				return;
			}
			// Carry the clock on across publishers: the gap in wall time, so timestamps keep rising.
			const now = performance.now();
			const rtp = this.#lastVideo ? (this.#lastVideo.rtp + Math.max(1, Math.round((now - this.#lastVideo.at) * 90))) >>> 0 : randomInt(0, 0x7fffffff);
			turn.videoOrigin = { ms: unit.dtsMs, rtp };
		}
		const timestamp = (turn.videoOrigin.rtp + Math.round((unit.ptsMs - turn.videoOrigin.ms) * 90)) >>> 0;
		const payloads = this.#video.packetizer.packetize(unit.data);
		for (const packet of this.#video.sender.packets(payloads, timestamp)) this.#send(packet, this.#video.port);
		this.#lastVideo = { rtp: timestamp, at: performance.now() };
		this.#stats.videoFramesSent += 1;
	}

	#sendAudio(turn: Turn, frame: AudioFrame): void {
		// Audio waits for the picture: before the first keyframe there is nothing to play it with.
		if (!turn.videoOrigin) return;
		if (!turn.audio || !turn.audio.config.equals(frame.config)) {
			turn.audio?.transcoder.close();
			const config = frame.config;
			const opening = import('./AacToOpus.js').then(({ AacToOpus }) => AacToOpus.create({ config, bitrateKbps: this.#options.audioBitrateKbps }));
			const audio: NonNullable<Turn['audio']> = { transcoder: undefined as unknown as AacToOpus, config, chain: Promise.resolve(), backlog: 0 };
			audio.chain = opening.then(
				(transcoder) => {
					audio.transcoder = transcoder;
					if (this.#turn !== turn || this.#closed) transcoder.close();
				},
				(error: unknown) => {
					this.#logger.warn({ err: String(error) }, 'AAC cannot be decoded; the publisher is disconnected');
					turn.publisher.disconnect(`audio refused: ${(error as Error).message}`);
				},
			);
			turn.audio = audio;
		}
		const audio = turn.audio;
		if (audio.backlog >= MAX_AUDIO_BACKLOG) return;
		audio.backlog += 1;
		audio.chain = audio.chain.then(async () => {
			audio.backlog -= 1;
			if (!audio.transcoder || audio.transcoder.closed || this.#closed) return;
			const packets = await audio.transcoder.transcode(frame.data);
			if (this.#closed || this.#turn !== turn) return;
			this.#stats.audioDecodeErrors = audio.transcoder.stats.decodeErrors;
			const now = performance.now();
			if (this.#lastAudioAt !== undefined && now - this.#lastAudioAt > 200) {
				// A gap (a publisher gone and back): the clock moves on by the time that passed.
				this.#audioRtp = (this.#audioRtp + Math.round((now - this.#lastAudioAt) * 48)) >>> 0;
			}
			for (const payload of packets) {
				for (const packet of this.#audio.sender.packets([payload], this.#audioRtp)) this.#send(packet, this.#audio.port);
				this.#audioRtp = (this.#audioRtp + OPUS_FRAME_SAMPLES) >>> 0;
				this.#stats.audioPacketsSent += 1;
			}
			this.#lastAudioAt = now;
		});
	}

	#send(packet: Buffer, port: number): void {
		this.#socket.send(packet, port, this.#options.host);
	}

	#endTurn(turn: Turn, disconnect?: string): void {
		const audio = turn.audio;
		if (audio) void audio.chain.then(() => audio.transcoder?.close());
		if (disconnect) turn.publisher.disconnect(disconnect);
	}

	/** Ends the feed: disconnects its publisher, closes its sources (the broadcast's RTP ingest) and socket. Idempotent. */
	close(reason = 'closed'): void {
		if (this.#closed) return;
		this.#closed = true;
		clearTimeout(this.#graceTimer);
		this.broadcast.off('@close', this.#onBroadcastClose);
		this.broadcast.off('sourceclosed', this.#onSourceClosed);
		const turn = this.#turn;
		this.#turn = undefined;
		if (turn) this.#endTurn(turn, `the broadcast's live feed ended: ${reason}`);
		for (const [kind, producerId] of [['video', this.#video.producerId], ['audio', this.#audio.producerId]] as const) {
			const producer = this.broadcast.closed ? undefined : this.broadcast.source(kind);
			if (producer?.id === producerId) producer.close();
		}
		this.#socket.close();
		this.#logger.info({ reason, ...this.#stats }, 'live feed ended');
		this.emit('@close', { reason });
		this.removeAllListeners();
	}
}
