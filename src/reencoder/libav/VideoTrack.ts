import { depacketizerFor } from '../../rtp/depacketize.js';
import { JitterBuffer, type EncodedFrame } from '../../rtp/JitterBuffer.js';
import { packetizerFor, RtpSender, type Packetizer } from '../../rtp/packetize.js';
import type { RtpPacket } from '../../rtp/packet.js';
import { buildNack, buildSenderReport } from '../../rtp/rtcp.js';
import { KeyframePolicy } from './KeyframePolicy.js';
import { LoadGovernor } from './LoadGovernor.js';
import { percentile } from './percentile.js';
import type { EngineHealth, EngineLayerStats, EngineTrackStats, LayerWiring, TrackWiring } from './protocol.js';
import { TrackSockets } from './TrackSockets.js';
import { VideoTranscoder } from './VideoTranscoder.js';

/** Our SSRC in RTCP we send upstream (NACKs); any value not used by the stream itself. */
const RTCP_SENDER_SSRC = 0x52454e43; // "RENC"
/** Frames waiting to be decoded beyond which the oldest non-keyframes are dropped (the decoder is hopelessly behind). */
const MAX_QUEUED_FRAMES = 60;
/** With the input broken (waiting for a keyframe), repeat the last good picture after this long without output, ms... */
const REPEAT_AFTER_MS = 150;
/** ...and with no input at all this long (shorter gaps are jitter, or this process being starved of CPU). */
const REPEAT_AFTER_SILENCE_MS = 500;
/** ...for at most this long after the last packet (a broadcaster gone for good is someone else's business). */
const REPEAT_FOR_MS = 10_000;
const TICK_MS = 10;
/** Load shedding looks at work from this long after the first output on, ms. */
const WARM_UP_MS = 2000;
/** Sender reports per layer this often, ms: mediasoup switches a viewer between layers only once it has one of each. */
const SENDER_REPORT_INTERVAL_MS = 1000;

/** One layer of the ladder: its keyframe policy and RTP stream, and its counters. */
interface Layer {
	index: number;
	wiring: LayerWiring;
	packetizer: Packetizer;
	sender: RtpSender;
	keyframes: KeyframePolicy;
	/** A layer at a lower frame rate than the input encodes a picture at most this often, ms (less half an input frame). */
	minGapMs: number;
	lastEncodedAt: number;
	framesEncoded: number;
	second: { encoded: number; bytes: number };
	lastSecond: { encoded: number; bytes: number };
	lastReportAt: number;
}

export interface VideoTrackEvents {
	/** The engine needs a keyframe from the broadcaster; rate-limited by the caller's interval. */
	upstreamKeyframe(reason: string): void;
	log(level: 'debug' | 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>): void;
	/** A re-encoded frame left; `latencyMs` from its input frame's arrival (absent for repeats). */
	sent?(latencyMs: number | undefined): void;
}

/**
 * One video track inside the engine: RTP in, through a jitter buffer that NACKs
 * losses, decode from the first keyframe, re-encode with keyframes on the fixed
 * interval and on demand (viewers' PLI/FIR, coalesced), RTP out. Falls behind
 * gracefully: only the newest waiting frame is encoded, and the encoder's
 * effort drops a level per second of falling behind. While the input is broken
 * it repeats the last good picture so viewers keep decodable video.
 */
export class VideoTrack {
	readonly #wiring: TrackWiring;
	readonly #events: VideoTrackEvents;
	readonly #jitter: JitterBuffer;
	readonly #transcoder: VideoTranscoder;
	/** Lowest first, as the producer's encodings. */
	readonly #layers: Layer[];
	readonly #layerBySsrc = new Map<number, Layer>();
	readonly #governor: LoadGovernor;
	readonly #frameIntervalMs: number;
	#sockets?: TrackSockets;
	#ticker?: NodeJS.Timeout;
	#statsTimer?: NodeJS.Timeout;
	#queue: EncodedFrame[] = [];
	#busy = false;
	#closed = false;
	/** Decoding is broken (unrepaired loss or a decode error) until the next keyframe. */
	#needKeyframe = true;
	#decodedKeyframe = false;
	#firstPacketAt?: number;
	#lastPacketAt = 0;
	#brokenSince?: number;
	#lastUpstreamAt = Number.NEGATIVE_INFINITY;
	#upstreamRequests = 0;
	#lastSentAt = 0;
	#firstOutputAt?: number;
	#lastPts = 0;
	#firstKeyframeArrivedAt?: number;
	#startupMs?: number;
	// Counters: totals, and this second's (reset by the stats tick).
	#framesEncoded = 0;
	#framesSkipped = 0;
	#framesRepeated = 0;
	#framesDropped = 0;
	#second = { encoded: 0, skipped: 0, repeated: 0, bytes: 0, latencies: [] as number[] };
	#lastSecond = { encoded: 0, skipped: 0, repeated: 0, bytes: 0, latencies: [] as number[] };
	/** Smoothed arrival-to-send latency, ms: the delay audio is held back by. */
	#latencyEwma = 0;

	private constructor(wiring: TrackWiring, transcoder: VideoTranscoder, events: VideoTrackEvents) {
		const video = wiring.video!;
		this.#wiring = wiring;
		this.#events = events;
		this.#transcoder = transcoder;
		this.#jitter = new JitterBuffer({ depacketizer: depacketizerFor(wiring.input.codec) });
		this.#layers = video.layers.map((layer, index) => ({
			index,
			wiring: layer,
			packetizer: packetizerFor(wiring.output.codec),
			sender: new RtpSender({ ssrc: layer.ssrc, payloadType: wiring.output.payloadType, firstSequenceNumber: layer.firstSequenceNumber }),
			keyframes: new KeyframePolicy({ intervalMs: video.keyframeIntervalMs, minIntervalMs: video.minKeyframeIntervalMs, earlyMs: 500 / video.fps }),
			minGapMs: 1000 / layer.fps - 500 / video.fps,
			lastEncodedAt: Number.NEGATIVE_INFINITY,
			framesEncoded: 0,
			second: { encoded: 0, bytes: 0 },
			lastSecond: { encoded: 0, bytes: 0 },
			lastReportAt: Number.NEGATIVE_INFINITY,
		}));
		for (const layer of this.#layers) this.#layerBySsrc.set(layer.wiring.ssrc, layer);
		this.#governor = new LoadGovernor({ fps: video.fps });
		this.#frameIntervalMs = 1000 / video.fps;
	}

	static async create(wiring: TrackWiring, events: VideoTrackEvents): Promise<VideoTrack> {
		if (!wiring.video || wiring.video.layers.length === 0) throw new Error('a video track needs video settings with at least one layer');
		const { threads } = wiring.video;
		const codec = wiring.output.codec as 'VP8' | 'H264';
		const transcoder = await VideoTranscoder.create({
			input: wiring.input.codec as 'VP8' | 'H264',
			outputs: wiring.video.layers.map(({ width, height, fps, bitrateKbps }) => ({ codec, width, height, fps, bitrateKbps, threads })),
		});
		const track = new VideoTrack(wiring, transcoder, events);
		try {
			track.#sockets = await TrackSockets.open(wiring, {
				rtp: (packet, now) => track.#onRtp(packet, now),
				outputRtcp: (messages) => {
					for (const message of messages) if (message.type === 'pli' || message.type === 'fir') track.requestKeyframe(message.mediaSsrc);
				},
			});
		} catch (error) {
			transcoder.close();
			throw error;
		}
		track.#ticker = setInterval(() => track.#tick(), TICK_MS);
		track.#statsTimer = setInterval(() => track.#endSecond(), 1000);
		return track;
	}

	/**
	 * A viewer asked (PLI/FIR at the re-encoded producer, for one layer's SSRC: a
	 * new viewer, or one switched to that layer): that layer's next picture allowed
	 * becomes a keyframe. Without a known SSRC, every layer's.
	 */
	requestKeyframe(ssrc?: number): void {
		const layer = ssrc === undefined ? undefined : this.#layerBySsrc.get(ssrc);
		for (const target of layer ? [layer] : this.#layers) target.keyframes.request();
		// With no input frame coming soon (input broken), serve it from the last picture.
		if (!this.#busy && this.#transcoder.hasPicture && performance.now() - this.#lastSentAt > this.#frameIntervalMs * 2) void this.#run();
	}

	/** Smoothed arrival-to-send latency of video, ms. */
	get latencyMs(): number {
		return this.#latencyEwma;
	}

	#onRtp(packet: RtpPacket, now: number): void {
		if (packet.payloadType !== this.#wiring.input.payloadType) return;
		this.#firstPacketAt ??= now;
		this.#lastPacketAt = now;
		this.#jitter.push(packet, now);
		this.#drainJitter(now);
	}

	#drainJitter(now: number): void {
		for (const frame of this.#jitter.pop(now)) {
			if (frame.afterLoss && !frame.keyframe) this.#markBroken('loss NACK could not repair', now);
			if (frame.keyframe) this.#firstKeyframeArrivedAt ??= frame.receivedAt;
			if (this.#needKeyframe && !frame.keyframe) {
				this.#framesDropped += 1;
				continue;
			}
			this.#queue.push(frame);
		}
		if (this.#queue.length > MAX_QUEUED_FRAMES) {
			// Hopelessly behind: keep the newest keyframe and what follows it, if any; else everything waits for one.
			const lastKey = this.#queue.findLastIndex((f) => f.keyframe);
			const dropped = lastKey > 0 ? lastKey : this.#queue.length;
			this.#framesDropped += dropped;
			this.#queue = lastKey > 0 ? this.#queue.slice(lastKey) : [];
			if (lastKey <= 0) this.#markBroken('decoder too far behind', now);
		}
		if (this.#queue.length > 0 && !this.#busy) void this.#run();
	}

	#markBroken(reason: string, now: number): void {
		if (!this.#needKeyframe) this.#events.log('debug', 'video input broken; waiting for a keyframe', { reason });
		this.#needKeyframe = true;
		this.#brokenSince ??= now;
		this.#askUpstream(reason, now);
	}

	#askUpstream(reason: string, now: number): void {
		if (now - this.#lastUpstreamAt < this.#wiring.upstreamKeyframeIntervalMs) return;
		this.#lastUpstreamAt = now;
		this.#upstreamRequests += 1;
		this.#events.upstreamKeyframe(reason);
	}

	/** Decodes every waiting frame (each is a reference for the next), encodes only the newest. */
	async #run(): Promise<void> {
		if (this.#busy || this.#closed) return;
		this.#busy = true;
		try {
			while (!this.#closed) {
				const frame = this.#queue.shift();
				if (!frame) {
					// No input frame: a pending on-demand keyframe, or a repeat, from the last picture.
					if (this.#repeatWanted(performance.now())) await this.#encodeAndSend(undefined);
					break;
				}
				if (this.#needKeyframe && !frame.keyframe) {
					this.#framesDropped += 1;
					continue;
				}
				const result = await this.#transcoder.decode(frame.data);
				if (this.#closed) return;
				if (result === 'error') {
					this.#markBroken('decode error', performance.now());
					continue;
				}
				if (frame.keyframe) {
					this.#needKeyframe = false;
					this.#brokenSince = undefined;
					this.#decodedKeyframe = true;
				}
				if (result !== 'picture') continue;
				if (this.#queue.length > 0) {
					// Behind real time: this picture is already late; the newest one waiting is what viewers want.
					this.#framesSkipped += 1;
					this.#second.skipped += 1;
					continue;
				}
				await this.#encodeAndSend(frame);
			}
		} catch (error) {
			this.#events.log('error', 'video pipeline failed', { err: String(error) });
		} finally {
			this.#busy = false;
		}
		if (this.#queue.length > 0 && !this.#closed) void this.#run();
	}

	#repeatWanted(now: number): boolean {
		if (!this.#transcoder.hasPicture) return false;
		for (const layer of this.#layers) {
			const pending = layer.keyframes.pendingAt();
			if (pending !== undefined && now >= pending) return true;
		}
		if (this.#queue.length > 0 || now - this.#lastPacketAt >= REPEAT_FOR_MS) return false;
		return this.#needKeyframe ? now - this.#lastSentAt >= REPEAT_AFTER_MS : now - this.#lastSentAt >= REPEAT_AFTER_SILENCE_MS && now - this.#lastPacketAt >= REPEAT_AFTER_SILENCE_MS;
	}

	/**
	 * Encodes the latest picture for every layer due (top first: most viewers'
	 * layer, and the one whose latency audio follows), each with its own
	 * keyframe decision, and sends each layer's packets under its SSRC. All
	 * layers carry the picture's one RTP timestamp.
	 */
	async #encodeAndSend(frame: EncodedFrame | undefined): Promise<void> {
		const now = performance.now();
		let pts = Math.round(now * 90);
		if (pts <= this.#lastPts) pts = this.#lastPts + 1;
		this.#lastPts = pts;
		let timestamp: number | undefined;
		let firstSentAt: number | undefined;
		for (let i = this.#layers.length - 1; i >= 0; i--) {
			const layer = this.#layers[i]!;
			const keyframe = layer.keyframes.due(now);
			// A layer at a lower frame rate skips pictures, but never a keyframe it owes.
			if (!keyframe && now - layer.lastEncodedAt < layer.minGapMs) continue;
			const pictures = await this.#transcoder.encode({ pts90k: pts, keyframe, layer: i });
			if (this.#closed) return;
			if (pictures.length === 0) continue;
			// RTP time from the wall clock: continuous across engine restarts, and equal to send time,
			// which is how mediasoup stamps its sender reports (so audio and video line up at viewers).
			timestamp ??= (this.#wiring.output.timestampBase + Math.round(Date.now() * 90)) >>> 0;
			const sentAt = performance.now();
			firstSentAt ??= sentAt;
			layer.lastEncodedAt = now;
			for (const picture of pictures) {
				const payloads = layer.packetizer.packetize(picture.data, picture.keyframe);
				for (const packet of layer.sender.packets(payloads, timestamp)) {
					this.#sockets?.sendRtp(packet);
					this.#second.bytes += packet.length;
					layer.second.bytes += packet.length;
				}
				if (picture.keyframe) layer.keyframes.made(sentAt);
				layer.framesEncoded += 1;
				layer.second.encoded += 1;
			}
			// The first packets of a layer get a sender report at once: until mediasoup has one per layer it cannot switch viewers.
			if (layer.lastReportAt === Number.NEGATIVE_INFINITY) this.#sendReport(layer, sentAt);
		}
		if (firstSentAt === undefined) return;
		const sentAt = firstSentAt;
		this.#framesEncoded += 1;
		this.#second.encoded += 1;
		this.#lastSentAt = sentAt;
		this.#firstOutputAt ??= sentAt;
		if (frame) {
			const latency = sentAt - frame.receivedAt;
			this.#second.latencies.push(latency);
			this.#latencyEwma = this.#latencyEwma === 0 ? latency : this.#latencyEwma * 0.9 + latency * 0.1;
			if (this.#startupMs === undefined && this.#firstKeyframeArrivedAt !== undefined) this.#startupMs = sentAt - this.#firstKeyframeArrivedAt;
		} else {
			this.#framesRepeated += 1;
			this.#second.repeated += 1;
		}
		this.#events.sent?.(frame ? sentAt - frame.receivedAt : undefined);
	}

	/** A sender report for one layer: the wall clock and the RTP time it maps to (the same mapping for every layer). */
	#sendReport(layer: Layer, now: number): void {
		layer.lastReportAt = now;
		const wallMs = Date.now();
		const rtpTimestamp = (this.#wiring.output.timestampBase + Math.round(wallMs * 90)) >>> 0;
		this.#sockets?.sendOutputRtcp(buildSenderReport(layer.wiring.ssrc, wallMs, rtpTimestamp, layer.sender.packetCount, layer.sender.octetCount));
	}

	#tick(): void {
		const now = performance.now();
		for (const layer of this.#layers) {
			if (layer.sender.packetCount > 0 && now - layer.lastReportAt >= SENDER_REPORT_INTERVAL_MS) this.#sendReport(layer, now);
		}
		this.#drainJitter(now);
		const nacks = this.#jitter.nacks(now);
		if (nacks.length > 0) this.#sockets?.sendInputRtcp(buildNack(RTCP_SENDER_SSRC, this.#wiring.input.ssrc, nacks));
		// No keyframe yet a while after the first packet (or since the input broke): ask the broadcaster.
		const waitingSince = this.#decodedKeyframe ? this.#brokenSince : this.#firstPacketAt;
		if (this.#needKeyframe && waitingSince !== undefined && now - waitingSince >= this.#wiring.firstKeyframeTimeoutMs) {
			this.#askUpstream(this.#decodedKeyframe ? 'input still broken' : 'no keyframe yet', now);
		}
		if (!this.#busy && this.#repeatWanted(now)) void this.#run();
	}

	#endSecond(): void {
		this.#lastSecond = this.#second;
		this.#second = { encoded: 0, skipped: 0, repeated: 0, bytes: 0, latencies: [] };
		for (const layer of this.#layers) {
			layer.lastSecond = layer.second;
			layer.second = { encoded: 0, bytes: 0 };
		}
		// The first seconds are not real time yet (codec start-up, the backlog of the first keyframe's GOP).
		if (this.#firstOutputAt === undefined || performance.now() - this.#firstOutputAt < WARM_UP_MS) return;
		const effort = this.#governor.second({ encoded: this.#lastSecond.encoded, skipped: this.#lastSecond.skipped, latencyP95: percentile(this.#lastSecond.latencies, 95) });
		if (effort !== this.#transcoder.effort) {
			this.#events.log('info', effort > this.#transcoder.effort ? 'engine falling behind real time; shedding load' : 'engine keeping up again; restoring quality', { effort });
			this.#transcoder.setEffort(effort);
		}
	}

	get health(): EngineHealth {
		const now = performance.now();
		if (this.#lastPacketAt === 0) return { state: 'stalled', reason: 'input: no packets yet' };
		if (now - this.#lastSentAt > 2000) {
			return { state: 'stalled', reason: now - this.#lastPacketAt > 2000 ? 'input: no packets' : this.#needKeyframe ? 'input: waiting for a keyframe' : 'engine: no output' };
		}
		const reasons: string[] = [];
		if (this.#transcoder.effort > 0) reasons.push(`cpu: encoder effort lowered to ${this.#transcoder.effort}`);
		if (this.#lastSecond.skipped > 0) reasons.push('behind real time: skipping frames');
		if (this.#needKeyframe) reasons.push('input: waiting for a keyframe (repeating the last picture)');
		else if (this.#lastSecond.repeated > 0) reasons.push('input: gaps (repeating the last picture)');
		return reasons.length > 0 ? { state: 'degraded', reason: reasons.join('; ') } : { state: 'ok' };
	}

	get stats(): EngineTrackStats {
		const jitter = this.#jitter.stats;
		const layers: EngineLayerStats[] = this.#layers.map((layer) => {
			const counts = layer.keyframes.counts;
			const size = this.#transcoder.outputSizeOf(layer.index);
			return {
				ssrc: layer.wiring.ssrc,
				width: size.width,
				height: size.height,
				fps: layer.lastSecond.encoded,
				bitrateKbps: Math.round((layer.lastSecond.bytes * 8) / 1000),
				framesEncoded: layer.framesEncoded,
				keyframes: counts.made,
				keyframesOnDemand: counts.onDemand,
				keyframeRequestsReceived: counts.requestsReceived,
			};
		});
		const sum = (key: 'keyframes' | 'keyframesOnDemand' | 'keyframeRequestsReceived'): number => layers.reduce((total, layer) => total + layer[key], 0);
		return {
			kind: 'video',
			health: this.health,
			fps: this.#lastSecond.encoded,
			bitrateKbps: Math.round((this.#lastSecond.bytes * 8) / 1000),
			framesEncoded: this.#framesEncoded,
			keyframes: sum('keyframes'),
			keyframesOnDemand: sum('keyframesOnDemand'),
			keyframeRequestsReceived: sum('keyframeRequestsReceived'),
			upstreamKeyframeRequests: this.#upstreamRequests,
			nacksSent: jitter.nacksSent,
			packetsRepaired: jitter.repaired,
			packetsLost: jitter.lost,
			framesSkipped: this.#framesSkipped,
			framesRepeated: this.#framesRepeated,
			framesDropped: this.#framesDropped,
			latencyMsP50: percentile(this.#lastSecond.latencies, 50),
			latencyMsP95: percentile(this.#lastSecond.latencies, 95),
			effort: this.#transcoder.effort,
			...(this.#startupMs !== undefined ? { startupMs: Math.round(this.#startupMs) } : {}),
			layers,
		};
	}

	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		clearInterval(this.#ticker);
		clearInterval(this.#statsTimer);
		this.#sockets?.close();
		this.#transcoder.close();
	}
}
