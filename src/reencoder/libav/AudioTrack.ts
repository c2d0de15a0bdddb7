import type { RtpPacket } from '../../rtp/packet.js';
import { RtpSender } from '../../rtp/packetize.js';
import { AudioTranscoder } from './AudioTranscoder.js';
import type { EngineHealth, EngineTrackStats, TrackWiring } from './protocol.js';
import { TrackSockets } from './TrackSockets.js';

/** Longest the audio is held back to wait for video, ms: beyond it the video is broken, not slow. */
const MAX_DELAY_MS = 500;
/** Opus packets of 20 ms at 48 kHz. */
const OPUS_SAMPLES_PER_PACKET = 960;

export interface AudioTrackEvents {
	log(level: 'debug' | 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>): void;
}

interface Held {
	releaseAt: number;
	packets: Buffer[];
}

/**
 * One audio track inside the engine: Opus passed through (or decoded and
 * encoded again when asked) under the engine's own SSRC, and released
 * `delayMs()` after it arrived, the video's measured arrival-to-send latency,
 * so a viewer receives both on one timeline (mediasoup stamps its sender reports
 * from arrival times, so what arrives together plays together).
 */
export class AudioTrack {
	readonly #wiring: TrackWiring;
	readonly #events: AudioTrackEvents;
	readonly #delayMs: () => number;
	readonly #sender: RtpSender;
	readonly #transcoder?: AudioTranscoder;
	#sockets?: TrackSockets;
	#held: Held[] = [];
	#timer?: NodeJS.Timeout;
	#statsTimer?: NodeJS.Timeout;
	#closed = false;
	#lastPacketAt = 0;
	#lastSentAt = 0;
	#packets = 0;
	#reencodedTimestamp = 0;
	#chain: Promise<void> = Promise.resolve();
	#second = { packets: 0, bytes: 0 };
	#lastSecond = { packets: 0, bytes: 0 };

	private constructor(wiring: TrackWiring, delayMs: () => number, events: AudioTrackEvents, transcoder?: AudioTranscoder) {
		this.#wiring = wiring;
		this.#events = events;
		this.#delayMs = delayMs;
		this.#transcoder = transcoder;
		this.#sender = new RtpSender({ ssrc: wiring.output.ssrc, payloadType: wiring.output.payloadType, firstSequenceNumber: wiring.output.firstSequenceNumber });
	}

	/** `delayMs`: how long to hold audio back (the video's latency); 0 without video. */
	static async create(wiring: TrackWiring, delayMs: () => number, events: AudioTrackEvents): Promise<AudioTrack> {
		const transcoder = wiring.audio?.reencode ? await AudioTranscoder.create({ bitrateKbps: wiring.audio.bitrateKbps }) : undefined;
		const track = new AudioTrack(wiring, delayMs, events, transcoder);
		try {
			track.#sockets = await TrackSockets.open(wiring, { rtp: (packet, now) => track.#onRtp(packet, now), outputRtcp: () => undefined });
		} catch (error) {
			transcoder?.close();
			throw error;
		}
		track.#statsTimer = setInterval(() => {
			track.#lastSecond = track.#second;
			track.#second = { packets: 0, bytes: 0 };
		}, 1000);
		return track;
	}

	#onRtp(packet: RtpPacket, now: number): void {
		if (packet.payloadType !== this.#wiring.input.payloadType) return;
		this.#lastPacketAt = now;
		const releaseAt = now + Math.min(MAX_DELAY_MS, Math.max(0, this.#delayMs()));
		if (!this.#transcoder) {
			// Passed through: the broadcaster's timestamps, moved by the track's constant offset.
			const timestamp = (packet.timestamp + this.#wiring.output.timestampBase) >>> 0;
			this.#hold({ releaseAt, packets: this.#sender.packets([packet.payload], timestamp) });
			return;
		}
		const transcoder = this.#transcoder;
		// One packet at a time through the codec, in order.
		this.#chain = this.#chain.then(async () => {
			if (this.#closed) return;
			const out = await transcoder.transcode(packet.payload).catch(() => [] as Buffer[]);
			for (const payload of out) {
				const timestamp = (this.#wiring.output.timestampBase + this.#reencodedTimestamp) >>> 0;
				this.#reencodedTimestamp += OPUS_SAMPLES_PER_PACKET;
				this.#hold({ releaseAt, packets: this.#sender.packets([payload], timestamp) });
			}
		});
	}

	#hold(held: Held): void {
		this.#held.push(held);
		this.#schedule();
	}

	#schedule(): void {
		if (this.#timer || this.#closed) return;
		const next = this.#held[0];
		if (!next) return;
		this.#timer = setTimeout(() => {
			this.#timer = undefined;
			this.#release();
		}, Math.max(0, next.releaseAt - performance.now()));
	}

	#release(): void {
		const now = performance.now();
		while (this.#held.length > 0 && this.#held[0]!.releaseAt <= now + 1) {
			for (const packet of this.#held.shift()!.packets) {
				this.#sockets?.sendRtp(packet);
				this.#packets += 1;
				this.#second.packets += 1;
				this.#second.bytes += packet.length;
			}
			this.#lastSentAt = now;
		}
		this.#schedule();
	}

	get health(): EngineHealth {
		const now = performance.now();
		if (this.#lastPacketAt === 0) return { state: 'stalled', reason: 'input: no packets yet' };
		if (now - this.#lastPacketAt > 2000) return { state: 'stalled', reason: 'input: no packets' };
		if (now - this.#lastSentAt > 2000) return { state: 'stalled', reason: 'engine: no output' };
		return { state: 'ok' };
	}

	get stats(): EngineTrackStats {
		return {
			kind: 'audio',
			health: this.health,
			fps: this.#lastSecond.packets,
			bitrateKbps: Math.round((this.#lastSecond.bytes * 8) / 1000),
			framesEncoded: this.#packets,
			keyframes: 0,
			keyframesOnDemand: 0,
			keyframeRequestsReceived: 0,
			upstreamKeyframeRequests: 0,
			nacksSent: 0,
			packetsRepaired: 0,
			packetsLost: 0,
			framesSkipped: 0,
			framesRepeated: 0,
			framesDropped: 0,
			latencyMsP50: 0,
			latencyMsP95: 0,
			effort: 0,
			audioDelayMs: Math.round(Math.min(MAX_DELAY_MS, Math.max(0, this.#delayMs()))),
		};
	}

	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		clearTimeout(this.#timer);
		clearInterval(this.#statsTimer);
		this.#sockets?.close();
		await this.#chain;
		this.#transcoder?.close();
	}
}
