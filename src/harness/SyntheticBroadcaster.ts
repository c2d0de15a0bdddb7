import { MediaStreamTrack, PictureLossIndication, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import { packetizeH264, readH264AccessUnits } from './h264.js';
import { readIvf } from './ivf.js';
import { readOggOpusPackets } from './ogg.js';

/** VP8 RTP payloads of one frame (RFC 7741): X=1, S on the first, I=1 with a 15-bit picture id (filled in when sent). */
function packetizeVp8(frame: Buffer, maxPayload: number): Buffer[] {
	const payloads: Buffer[] = [];
	for (let offset = 0; offset < frame.length; offset += maxPayload) {
		const descriptor = Buffer.from([offset === 0 ? 0x90 : 0x80, 0x80, 0x80, 0x00]);
		payloads.push(Buffer.concat([descriptor, frame.subarray(offset, offset + maxPayload)]));
	}
	return payloads;
}

export interface SyntheticBroadcasterOptions {
	/** The clip as two encodings of the same frames (see ensureClip). */
	clip: { codec?: 'VP8' | 'H264'; normal: string; intra: string };
	/** An Ogg Opus file to send as audio (see ensureOpusClip); none: video only. */
	audio?: string;
	fps: number;
	/** Largest RTP payload. Default 1100. */
	maxPayload?: number;
}

/** Opus packet duration of the fixtures (20 ms, RTP timestamp step 960 at 48 kHz). */
const AUDIO_PACKET_MS = 20;

/** RTCP payload-specific feedback format of FIR (RFC 5104); PLI is PictureLossIndication.count (1). */
const FIR_FORMAT = 4;

/** Turns `offer` into an answer: a WHIP POST, or Broadcast.publish() in process. */
export type OfferExchange = (offer: string) => Promise<string>;

/** WHIP (RFC 9725) exchange against a relay URL, with an optional bearer token. Returns the answer; keeps the session URL. */
export function whipExchange(url: string, token?: string): OfferExchange & { session?: string } {
	const exchange = (async (offer: string) => {
		const response = await fetch(url, {
			method: 'POST',
			headers: { 'content-type': 'application/sdp', ...(token ? { authorization: `Bearer ${token}` } : {}) },
			body: offer,
		});
		const text = await response.text();
		if (response.status !== 201) throw new Error(`WHIP ${url} answered ${response.status}: ${text}`);
		exchange.session = new URL(response.headers.get('location')!, url).toString();
		return text;
	}) as OfferExchange & { session?: string };
	return exchange;
}

/**
 * A broadcaster that behaves like a real WebRTC encoder where it matters here:
 * it sends a long-GOP VP8 clip over werift, and answers every keyframe request
 * (PLI/FIR) with a real keyframe of the current frame, which is what makes a
 * broadcaster's bitrate climb when many viewers ask. It counts the requests
 * and the bytes it sends, and remembers when it sent each frame so the
 * latency probe can match frames after re-encoding.
 */
export class SyntheticBroadcaster {
	readonly pc: RTCPeerConnection;
	/** Keyframe requests (PLI + FIR) received from the relay. */
	keyframeRequests = 0;
	/** Keyframes sent because of a request. */
	requestedKeyframesSent = 0;
	/**
	 * This many of the next keyframe requests go unanswered, as when PLIs are lost on
	 * the way (tests of what the relay does when its requests come to nothing).
	 */
	ignoreKeyframeRequests = 0;
	framesSent = 0;
	bytesSent = 0;
	/** Bytes sent per second since start. */
	readonly bytesPerSecond: number[] = [];
	readonly #codec: 'VP8' | 'H264';
	/** Per frame, its RTP payloads (packetized once, up front). */
	readonly #normal: Buffer[][];
	readonly #intra: Buffer[][];
	readonly #normalBytes: number[];
	readonly #audioPackets: Buffer[];
	/** Audio packets per loop: as long as the video clip when the audio clip is (see the constructor). */
	readonly #audioLoopPackets: number;
	readonly #audioTrack = new MediaStreamTrack({ kind: 'audio' });
	#audioSequence = 0;
	/** Send time (performance.now()) of every video frame and audio packet since start, by stream sequence. */
	readonly #videoSentAt: number[] = [];
	readonly #audioSentAt: number[] = [];
	readonly #fps: number;
	readonly #maxPayload: number;
	readonly #track = new MediaStreamTrack({ kind: 'video' });
	/** performance.now() of the last send of each clip frame. */
	readonly #sentAt: number[];
	#keyframeWanted = false;
	#timer?: NodeJS.Timeout;
	#pictureId = 0;
	#sequenceNumber = 0;
	#startedAt = 0;
	#closed = false;

	constructor(options: SyntheticBroadcasterOptions) {
		this.#codec = options.clip.codec ?? 'VP8';
		this.#fps = options.fps;
		this.#maxPayload = options.maxPayload ?? 1100;
		const load = (file: string): Buffer[][] =>
			this.#codec === 'VP8'
				? readIvf(file).frames.map((frame) => packetizeVp8(frame, this.#maxPayload))
				: readH264AccessUnits(file).map((unit) => packetizeH264(unit, this.#maxPayload));
		this.#normal = load(options.clip.normal);
		this.#intra = load(options.clip.intra);
		if (this.#normal.length !== this.#intra.length || this.#normal.length === 0) throw new Error('fixture clips differ in length');
		this.#normalBytes = this.#normal.map((payloads) => payloads.reduce((sum, p) => sum + p.length, 0));
		this.#audioPackets = options.audio ? readOggOpusPackets(options.audio) : [];
		// An Ogg Opus file of N seconds holds N × 50 packets plus one (the encoder's pre-skip pushes its
		// tail into an extra packet). Looped as is, audio would drift 20 ms per loop from video: when
		// the audio clip is as long as the video clip, loop it at exactly the video clip's length.
		const videoLoopPackets = Math.round((this.#normal.length / this.#fps) * (1000 / AUDIO_PACKET_MS));
		this.#audioLoopPackets =
			this.#audioPackets.length >= videoLoopPackets && this.#audioPackets.length <= videoLoopPackets + 1 ? videoLoopPackets : this.#audioPackets.length;
		this.#sentAt = new Array<number>(this.#normal.length).fill(Number.NaN);
		this.pc = new RTCPeerConnection({
			codecs: {
				video: [
					new RTCRtpCodecParameters({
						mimeType: `video/${this.#codec}`,
						clockRate: 90000,
						payloadType: this.#codec === 'VP8' ? 96 : 102,
						...(this.#codec === 'H264' ? { parameters: 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1' } : {}),
						rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
					}),
				],
				audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })],
			},
		});
		const sender = this.pc.addTransceiver(this.#track, { direction: 'sendonly' }).sender;
		sender.onRtcp.subscribe((rtcp) => {
			const feedback = (rtcp as { feedback?: { count?: number } }).feedback;
			if (feedback && (feedback.count === PictureLossIndication.count || feedback.count === FIR_FORMAT)) {
				this.keyframeRequests += 1;
				if (this.ignoreKeyframeRequests > 0) this.ignoreKeyframeRequests -= 1;
				else this.#keyframeWanted = true;
			}
		});
	}

	get clipFrames(): number {
		return this.#normal.length;
	}

	/** When clip frame `index` was last sent (performance.now()), or NaN. */
	sentAt(index: number): number {
		return this.#sentAt[index % this.#normal.length] ?? Number.NaN;
	}

	/** Video bitrate the clip has with no keyframe requests, bit/s: the broadcaster's steady state. */
	get steadyBitrate(): number {
		const bytes = this.#normalBytes.reduce((sum, b) => sum + b, 0);
		return (bytes * 8 * this.#fps) / this.#normal.length;
	}

	async connect(exchange: OfferExchange): Promise<void> {
		if (this.#audioPackets.length) this.pc.addTransceiver(this.#audioTrack, { direction: 'sendonly' });
		await this.pc.setLocalDescription(await this.pc.createOffer());
		const answer = await exchange(this.pc.localDescription!.sdp);
		await this.pc.setRemoteDescription({ type: 'answer', sdp: answer });
	}

	/**
	 * Starts sending in real time (the clip loops). Video and audio share one clock and one
	 * timer: video frame n is due at start + n/fps, audio packet m at start + m × 20 ms, and
	 * each wake-up sends whatever is due in media-time order. So both tracks stay on one
	 * timeline (the A/V offset probe relies on it), and their RTP timestamps, both from 0,
	 * advance with the wall clock the RTCP sender reports map them to.
	 */
	start(): void {
		this.#startedAt = performance.now();
		const videoPeriod = 1000 / this.#fps;
		const tick = (): void => {
			if (this.#closed) return;
			for (;;) {
				const videoDue = this.#startedAt + this.framesSent * videoPeriod;
				const audioDue = this.#audioPackets.length ? this.#startedAt + this.#audioSequence * AUDIO_PACKET_MS : Number.POSITIVE_INFINITY;
				const due = Math.min(videoDue, audioDue);
				const now = performance.now();
				if (due > now) {
					this.#timer = setTimeout(tick, due - now);
					return;
				}
				if (videoDue <= audioDue) this.#sendFrame(this.framesSent);
				else this.#sendAudio();
			}
		};
		tick();
	}

	#sendAudio(): void {
		const packet = this.#audioPackets[this.#audioSequence % this.#audioLoopPackets]!;
		const header = new RtpHeader({ payloadType: 111, timestamp: (this.#audioSequence * 960) >>> 0, marker: false, sequenceNumber: this.#audioSequence & 0xffff });
		this.#audioTrack.writeRtp(new RtpPacket(header, packet));
		this.#audioSentAt.push(performance.now());
		this.#audioSequence += 1;
	}

	/** The audio clip's packets (one loop), in order: packet m of the stream is packet m mod length of these. */
	get audioClipPackets(): readonly Buffer[] {
		return this.#audioPackets.slice(0, this.#audioLoopPackets);
	}

	get fps(): number {
		return this.#fps;
	}

	/** When video frame `sequence` of the stream (counted from 0 at start, across loops) was sent; NaN if not yet. */
	videoFrameSentAt(sequence: number): number {
		return this.#videoSentAt[sequence] ?? Number.NaN;
	}

	/** When audio packet `sequence` of the stream (from 0 at start, across loops) was sent; NaN if not yet. */
	audioPacketSentAt(sequence: number): number {
		return this.#audioSentAt[sequence] ?? Number.NaN;
	}

	/** Audio packets sent so far. */
	get audioPacketsSent(): number {
		return this.#audioSequence;
	}

	#sendFrame(sequence: number): void {
		const index = sequence % this.#normal.length;
		let payloads = this.#normal[index]!;
		// The normal clip's own keyframe is frame 0; any other keyframe is an answer to a request.
		if (this.#keyframeWanted && index !== 0) {
			payloads = this.#intra[index]!;
			this.requestedKeyframesSent += 1;
		}
		this.#keyframeWanted = false;
		const timestamp = (sequence * Math.round(90000 / this.#fps)) >>> 0;
		const pictureId = this.#pictureId++ & 0x7fff;
		let bytes = 0;
		payloads.forEach((packetized, i) => {
			// VP8 payloads get their picture id here (on a copy: the packetized clip is reused every loop).
			const payload = this.#codec === 'VP8' ? Buffer.from(packetized) : packetized;
			if (this.#codec === 'VP8') payload.writeUInt16BE(0x8000 | pictureId, 2);
			const header = new RtpHeader({ payloadType: 96, timestamp, marker: i === payloads.length - 1, sequenceNumber: this.#sequenceNumber++ & 0xffff });
			this.#track.writeRtp(new RtpPacket(header, payload));
			bytes += payload.length;
		});
		this.#sentAt[index] = performance.now();
		this.#videoSentAt.push(this.#sentAt[index]);
		this.framesSent += 1;
		this.bytesSent += bytes;
		const second = Math.floor((performance.now() - this.#startedAt) / 1000);
		this.bytesPerSecond[second] = (this.bytesPerSecond[second] ?? 0) + bytes;
	}

	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		clearTimeout(this.#timer);
		await this.pc.close();
	}
}
