import {
	H264RtpPayload,
	RTCPeerConnection,
	RTCRtpCodecParameters,
	Vp8RtpPayload,
	type MediaStreamTrack,
	type RTCRtpTransceiver,
} from 'werift';
import { BarcodeReader } from './BarcodeReader.js';
import { DecodabilityTracker } from './decodability.js';

export type ViewerCodec = 'VP8' | 'H264';

export interface WeriftViewerOptions {
	codec?: ViewerCodec;
	/** Payload type the viewer offers for its video codec. Default 96 (VP8) / 102 (H264). */
	videoPayloadType?: number;
	audio?: boolean;
	/**
	 * Decode the video (VP8 only) and read the fixture's barcode from each decodable frame, into
	 * `barcodeArrivals`: which broadcaster frame arrived when. Costs one VP8 decode per frame. Default false.
	 */
	readBarcodes?: boolean;
}

/**
 * A real WebRTC viewer (werift) that depacketizes what it receives: counts
 * frames and keyframes and records when each keyframe arrived.
 */
export class WeriftViewer {
	readonly pc: RTCPeerConnection;
	frames = 0;
	audioPackets = 0;
	/** Arrival time (ms, performance.now) of each keyframe. */
	readonly keyframeTimes: number[] = [];
	/** Arrival time of each completed frame. */
	readonly frameTimes: number[] = [];
	/**
	 * Arrival time of each frame a decoder could decode: every packet of it arrived, in order,
	 * and so did every frame back to a keyframe (a gap breaks the chain until the next keyframe).
	 */
	readonly decodableFrameTimes: number[] = [];
	/** Arrival time and payload size of each audio packet, in arrival order (the A/V offset probe reads clicks from the sizes). */
	readonly audioArrivals: Array<{ at: number; size: number }> = [];
	/**
	 * With readBarcodes: each decodable frame's clip frame number (the barcode) and RTP arrival time
	 * (its last packet), in arrival order. Misreads are left out (a frame must follow the previous
	 * read within a few frames, as real frames do).
	 */
	readonly barcodeArrivals: Array<{ index: number; at: number }> = [];
	videoSsrc?: number;
	/** VP8: the picture size in the last keyframe's header (the simulcast layer a viewer receives). */
	keyframeSize?: { width: number; height: number };
	/** The relay's id for this viewer, when joined through a fixture. */
	relayViewerId = '';
	/** performance.now() when connect() began, for time to first frame. */
	joinedAt = Number.NaN;
	#video: RTCRtpTransceiver;
	#lastKeyframeTimestamp?: number;
	readonly #codec: ViewerCodec;
	readonly #decodability = new DecodabilityTracker();
	/** The frame being received: its payloads, for the barcode reader. */
	#frame?: { timestamp: number; payloads: Buffer[] };
	readonly #barcodes?: BarcodeReader;
	#lastBarcode = -1;

	constructor(options: WeriftViewerOptions = {}) {
		this.#codec = options.codec ?? 'VP8';
		if (options.readBarcodes) {
			if (this.#codec !== 'VP8') throw new TypeError('readBarcodes decodes VP8 only; offer VP8 (codec: "VP8")');
			this.#barcodes = new BarcodeReader();
		}
		const videoCodec =
			this.#codec === 'VP8'
				? new RTCRtpCodecParameters({
						mimeType: 'video/VP8',
						clockRate: 90000,
						payloadType: options.videoPayloadType ?? 96,
						rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
					})
				: new RTCRtpCodecParameters({
						mimeType: 'video/H264',
						clockRate: 90000,
						payloadType: options.videoPayloadType ?? 102,
						parameters: 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1',
						rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
					});
		this.pc = new RTCPeerConnection({
			codecs: {
				video: [videoCodec],
				audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })],
			},
		});
		this.#video = this.pc.addTransceiver('video', { direction: 'recvonly' });
		if (options.audio !== false) {
			const audio = this.pc.addTransceiver('audio', { direction: 'recvonly' });
			audio.onTrack.subscribe((track: MediaStreamTrack) => {
				track.onReceiveRtp.subscribe((rtp) => {
					this.audioPackets += 1;
					this.audioArrivals.push({ at: performance.now(), size: rtp.payload.length });
				});
			});
		}
		this.#video.onTrack.subscribe((track: MediaStreamTrack) => {
			track.onReceiveRtp.subscribe((rtp) => {
				this.videoSsrc = rtp.header.ssrc;
				const payload = rtp.payload;
				const keyframeStart = this.#isKeyframeStart(payload);
				if (keyframeStart && this.#lastKeyframeTimestamp !== rtp.header.timestamp) {
					this.#lastKeyframeTimestamp = rtp.header.timestamp;
					this.keyframeTimes.push(performance.now());
					if (this.#codec === 'VP8') this.keyframeSize = vp8KeyframeSize(Vp8RtpPayload.deSerialize(payload).payload) ?? this.keyframeSize;
				}
				this.#onVideoPacket(rtp.header.sequenceNumber, rtp.header.timestamp, rtp.header.marker, keyframeStart, payload);
				if (rtp.header.marker) {
					this.frames += 1;
					this.frameTimes.push(performance.now());
				}
			});
		});
	}

	#onVideoPacket(sequence: number, timestamp: number, marker: boolean, keyframeStart: boolean, payload: Buffer): void {
		if (!this.#frame || this.#frame.timestamp !== timestamp) this.#frame = { timestamp, payloads: [] };
		if (this.#barcodes && payload.length) this.#frame.payloads.push(Vp8RtpPayload.deSerialize(payload).payload);
		if (!this.#decodability.push({ sequence, timestamp, marker, keyframeStart, frameStart: this.#isFrameStart(payload) })) return;
		const at = performance.now();
		this.decodableFrameTimes.push(at);
		if (this.#barcodes) void this.#readBarcode(Buffer.concat(this.#frame.payloads), at);
	}

	async #readBarcode(frame: Buffer, at: number): Promise<void> {
		const index = await this.#barcodes!.read(frame).catch(() => undefined);
		if (index === undefined) return;
		const step = this.#lastBarcode < 0 ? 0 : index - this.#lastBarcode;
		this.#lastBarcode = index;
		// Forward by a few frames, or back to the clip's start when it loops (the first read is only a reference).
		if ((step >= 1 && step <= 5) || (step < 0 && index < 5)) this.barcodeArrivals.push({ index, at });
	}

	#isFrameStart(payload: Buffer): boolean {
		if (payload.length === 0) return false;
		if (this.#codec !== 'VP8') return true; // H264: not checked (FU-A start bits); gaps still break the chain.
		const vp8 = Vp8RtpPayload.deSerialize(payload);
		return vp8.isPartitionHead;
	}

	#isKeyframeStart(payload: Buffer): boolean {
		if (payload.length === 0) return false;
		if (this.#codec === 'VP8') {
			const vp8 = Vp8RtpPayload.deSerialize(payload);
			return vp8.isPartitionHead && vp8.isKeyframe;
		}
		try {
			return H264RtpPayload.deSerialize(payload).isKeyframe;
		} catch {
			return false;
		}
	}

	/** Makes the offer, lets `exchange` turn it into an answer (in process or over WHEP), applies it. */
	async connect(exchange: (offer: string) => Promise<string>): Promise<void> {
		this.joinedAt = performance.now();
		const offer = await this.pc.createOffer();
		await this.pc.setLocalDescription(offer);
		const answer = await exchange(this.pc.localDescription!.sdp);
		await this.pc.setRemoteDescription({ type: 'answer', sdp: answer });
	}

	/** Time from connect() to the first keyframe, ms (NaN until one arrived). */
	get timeToFirstFrame(): number {
		return (this.keyframeTimes[0] ?? Number.NaN) - this.joinedAt;
	}

	/** Sends a PLI for the video it receives, as a viewer that lost packets would. */
	async sendPli(): Promise<void> {
		if (this.videoSsrc === undefined) return;
		await this.#video.receiver.sendRtcpPLI(this.videoSsrc);
	}

	async waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
		const deadline = performance.now() + timeoutMs;
		while (!predicate()) {
			if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (frames ${this.frames}, keyframes ${this.keyframeTimes.length})`);
			await new Promise((resolve) => setTimeout(resolve, 50));
		}
	}

	async waitForFrames(count: number, timeoutMs = 15_000): Promise<void> {
		const target = this.frames + count;
		await this.waitFor(() => this.frames >= target, timeoutMs, `${count} more frames`);
	}

	async close(): Promise<void> {
		await this.pc.close();
		await this.#barcodes?.close();
	}
}

/** Width and height from a VP8 keyframe's header (RFC 6386 §9.1: tag, start code 9d 01 2a, 14-bit sizes). */
export function vp8KeyframeSize(frame: Buffer): { width: number; height: number } | undefined {
	if (frame.length < 10 || (frame[0]! & 0x01) !== 0 || frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) return undefined;
	return { width: frame.readUInt16LE(6) & 0x3fff, height: frame.readUInt16LE(8) & 0x3fff };
}
