import { Codec, CodecContext, Frame, Packet } from 'node-av/lib';
import { AV_CODEC_ID_VP8, AV_FRAME_FLAG_CORRUPT, AVERROR_EAGAIN } from 'node-av/constants';
import { BARCODE_BITS } from './fixtures.js';

/**
 * Reads the frame number the fixture clip draws as a barcode (top sixth of the picture,
 * BARCODE_BITS blocks across, white where the bit is set) from whole VP8 frames, decoding
 * them with node-av's low-level API. A werift viewer uses it to know which broadcaster frame
 * each received frame is (after re-encoding too), with the frame's RTP arrival time: no
 * decoder delay in the measure, unlike the FFmpeg latency probe.
 *
 * Feed it every frame from a keyframe on, in order (a frame with a missing reference decodes
 * to garbage: skip to the next keyframe instead). Calls run one at a time, in call order.
 */
export class BarcodeReader {
	readonly #decoder = new CodecContext();
	readonly #packet = new Packet();
	readonly #frame = new Frame();
	#tail: Promise<unknown>;
	#closed = false;

	constructor() {
		this.#packet.alloc();
		this.#frame.alloc();
		const codec = Codec.findDecoder(AV_CODEC_ID_VP8);
		if (!codec) throw new Error('node-av has no VP8 decoder; reinstall node-av');
		this.#decoder.allocContext3(codec);
		this.#tail = this.#decoder.open2(codec, null).then((opened) => {
			if (opened < 0) throw new Error(`could not open the VP8 decoder (libav error ${opened})`);
		});
	}

	/** The frame number in `frame` (a whole VP8 frame), or undefined when it did not decode to a picture. */
	read(frame: Buffer): Promise<number | undefined> {
		const result = this.#tail.then(() => (this.#closed ? undefined : this.#read(frame)));
		this.#tail = result.catch(() => undefined);
		return result;
	}

	async #read(data: Buffer): Promise<number | undefined> {
		if (data.length === 0) return undefined;
		this.#packet.data = data;
		const sent = await this.#decoder.sendPacket(this.#packet);
		this.#packet.unref();
		if (sent < 0 && sent !== AVERROR_EAGAIN) return undefined;
		let index: number | undefined;
		for (;;) {
			const received = await this.#decoder.receiveFrame(this.#frame);
			if (received === AVERROR_EAGAIN || received < 0) break;
			if (!this.#frame.hasFlags(AV_FRAME_FLAG_CORRUPT) && this.#frame.decodeErrorFlags === 0) index = barcodeOf(this.#frame);
			this.#frame.unref();
		}
		return index;
	}

	/** Idempotent; frees the decoder once the call in flight returns. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		await this.#tail.catch(() => undefined);
		this.#decoder.freeContext();
		this.#packet.free();
		this.#frame.free();
	}
}

/** The barcode of a decoded picture: the luma at the middle of each block, a few pixels averaged. */
function barcodeOf(frame: Frame): number | undefined {
	const luma = frame.data?.[0];
	const stride = frame.linesize[0];
	if (!luma || !stride) return undefined;
	const { width, height } = frame;
	const row = Math.floor(height / 12) * stride;
	let index = 0;
	for (let bit = 0; bit < BARCODE_BITS; bit++) {
		const x = Math.floor(((bit + 0.5) * width) / BARCODE_BITS);
		const level = (luma[row + x - 1]! + luma[row + x]! + luma[row + x + 1]!) / 3;
		if (level > 127) index |= 1 << bit;
	}
	return index;
}
