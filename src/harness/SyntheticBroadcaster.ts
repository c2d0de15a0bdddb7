import { MediaStreamTrack, PictureLossIndication, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import { readIvf } from './ivf.js';

export interface SyntheticBroadcasterOptions {
	/** The clip as two encodings of the same frames (see ensureClip). */
	clip: { normal: string; intra: string };
	fps: number;
	/** Largest RTP payload. Default 1100. */
	maxPayload?: number;
}

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
	framesSent = 0;
	bytesSent = 0;
	/** Bytes sent per second since start. */
	readonly bytesPerSecond: number[] = [];
	readonly #normal: Buffer[];
	readonly #intra: Buffer[];
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
		this.#normal = readIvf(options.clip.normal).frames;
		this.#intra = readIvf(options.clip.intra).frames;
		if (this.#normal.length !== this.#intra.length || this.#normal.length === 0) throw new Error('fixture clips differ in length');
		this.#fps = options.fps;
		this.#maxPayload = options.maxPayload ?? 1100;
		this.#sentAt = new Array<number>(this.#normal.length).fill(Number.NaN);
		this.pc = new RTCPeerConnection({
			codecs: {
				video: [
					new RTCRtpCodecParameters({
						mimeType: 'video/VP8',
						clockRate: 90000,
						payloadType: 96,
						rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
					}),
				],
			},
		});
		const sender = this.pc.addTransceiver(this.#track, { direction: 'sendonly' }).sender;
		sender.onRtcp.subscribe((rtcp) => {
			const feedback = (rtcp as { feedback?: { count?: number } }).feedback;
			if (feedback && (feedback.count === PictureLossIndication.count || feedback.count === FIR_FORMAT)) {
				this.keyframeRequests += 1;
				this.#keyframeWanted = true;
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

	/** Bitrate the clip has with no keyframe requests, bit/s: the broadcaster's steady state. */
	get steadyBitrate(): number {
		const bytes = this.#normal.slice(1).reduce((sum, f) => sum + f.length, 0);
		return (bytes * 8 * this.#fps) / (this.#normal.length - 1);
	}

	async connect(exchange: OfferExchange): Promise<void> {
		await this.pc.setLocalDescription(await this.pc.createOffer());
		const answer = await exchange(this.pc.localDescription!.sdp);
		await this.pc.setRemoteDescription({ type: 'answer', sdp: answer });
	}

	/** Starts sending frames in real time (the clip loops). */
	start(): void {
		this.#startedAt = performance.now();
		const period = 1000 / this.#fps;
		const tick = (): void => {
			if (this.#closed) return;
			this.#sendFrame(this.framesSent);
			const next = this.#startedAt + this.framesSent * period;
			this.#timer = setTimeout(tick, Math.max(0, next - performance.now()));
		};
		tick();
	}

	#sendFrame(sequence: number): void {
		const index = sequence % this.#normal.length;
		let frame = this.#normal[index]!;
		// The normal clip's own keyframe is frame 0; any other keyframe is an answer to a request.
		if (this.#keyframeWanted && index !== 0) {
			frame = this.#intra[index]!;
			this.requestedKeyframesSent += 1;
		}
		this.#keyframeWanted = false;
		const timestamp = (sequence * Math.round(90000 / this.#fps)) >>> 0;
		const pictureId = this.#pictureId++ & 0x7fff;
		for (let offset = 0; offset < frame.length; offset += this.#maxPayload) {
			const chunk = frame.subarray(offset, offset + this.#maxPayload);
			// VP8 payload descriptor (RFC 7741): X=1, S on the first packet, I=1 with a 15-bit picture id.
			const descriptor = Buffer.from([offset === 0 ? 0x90 : 0x80, 0x80, 0x80 | (pictureId >> 8), pictureId & 0xff]);
			const header = new RtpHeader({
				payloadType: 96,
				timestamp,
				marker: offset + this.#maxPayload >= frame.length,
				sequenceNumber: this.#sequenceNumber++ & 0xffff,
			});
			this.#track.writeRtp(new RtpPacket(header, Buffer.concat([descriptor, chunk])));
		}
		this.#sentAt[index] = performance.now();
		this.framesSent += 1;
		this.bytesSent += frame.length;
		const second = Math.floor((performance.now() - this.#startedAt) / 1000);
		this.bytesPerSecond[second] = (this.bytesPerSecond[second] ?? 0) + frame.length;
	}

	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		clearTimeout(this.#timer);
		await this.pc.close();
	}
}
