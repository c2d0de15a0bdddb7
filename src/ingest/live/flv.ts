/**
 * FLV tags (the payloads RTMP carries, and what FFmpeg writes for the SRT
 * ingest) to media the relay can use: H264 access units in Annex B form (SPS
 * and PPS in front of every keyframe, so a decoder can start at any of them)
 * and raw AAC frames with their AudioSpecificConfig. Anything else is refused
 * with an UnsupportedMediaError that names what was sent and what to send.
 */
import { UnsupportedCodecError } from '../../errors.js';
import { decodeAmf0, type Amf0Value } from './amf0.js';

export const FLV_TAG_AUDIO = 8;
export const FLV_TAG_VIDEO = 9;
export const FLV_TAG_SCRIPT = 18;

const VIDEO_CODEC_NAMES: Record<number, string> = { 2: 'Sorenson H.263', 3: 'Screen video', 4: 'VP6', 5: 'VP6 with alpha', 6: 'Screen video 2', 7: 'H264', 12: 'HEVC (legacy id 12)' };
const AUDIO_CODEC_NAMES: Record<number, string> = { 0: 'PCM', 1: 'ADPCM', 2: 'MP3', 3: 'PCM LE', 4: 'Nellymoser', 5: 'Nellymoser', 6: 'Nellymoser', 7: 'G.711 A-law', 8: 'G.711 mu-law', 10: 'AAC', 11: 'Speex', 14: 'MP3 8 kHz' };

/** Media the relay cannot take; the message says what was sent and what to send instead. */
export class UnsupportedMediaError extends UnsupportedCodecError {
	constructor(message: string) {
		super(message);
		this.name = 'UnsupportedMediaError';
	}
}

export interface VideoAccessUnit {
	kind: 'video';
	keyframe: boolean;
	/** Decode time, ms (the FLV timestamp). */
	dtsMs: number;
	/** Presentation time, ms (decode time plus the composition offset). */
	ptsMs: number;
	/** Annex B byte stream of the access unit. */
	data: Buffer;
}

export interface AudioFrame {
	kind: 'audio';
	ptsMs: number;
	/** One raw AAC frame. */
	data: Buffer;
	/** The stream's AudioSpecificConfig (decoder extradata). */
	config: Buffer;
}

export type LiveMedia = VideoAccessUnit | AudioFrame;

interface AvcConfig {
	lengthSize: number;
	parameterSets: Buffer[];
}

const START_CODE = Buffer.from([0, 0, 0, 1]);
const NAL_IDR = 5;
const NAL_SPS = 7;
const NAL_PPS = 8;
const NAL_AUD = 9;

/**
 * Reads one publisher's FLV tags in order. Holds the codec configuration the
 * sequence headers carry; a frame before its sequence header is dropped (an
 * encoder always sends the header first, so that is a cut-short stream).
 */
export class FlvMediaParser {
	#avc?: AvcConfig;
	#aac?: Buffer;
	#metadata: { audio?: boolean } = {};
	#bFramesSeen = false;

	/** Whether the stream announced audio (onMetaData) or has sent an AAC header. */
	get hasAudio(): boolean {
		return this.#aac !== undefined || this.#metadata.audio === true;
	}

	/** True once a frame with a composition offset came (B-frames, or any reordering). */
	get reorders(): boolean {
		return this.#bFramesSeen;
	}

	/** One tag body; returns the media it holds, if any. Throws UnsupportedMediaError. */
	parse(type: number, timestampMs: number, body: Buffer): LiveMedia | undefined {
		switch (type) {
			case FLV_TAG_VIDEO:
				return this.#video(timestampMs, body);
			case FLV_TAG_AUDIO:
				return this.#audio(timestampMs, body);
			case FLV_TAG_SCRIPT:
				this.#script(body);
				return undefined;
			default:
				return undefined;
		}
	}

	#video(timestampMs: number, body: Buffer): VideoAccessUnit | undefined {
		if (body.length < 1) return undefined;
		const frameType = (body[0]! >> 4) & 0x07;
		if (body[0]! & 0x80) {
			// Enhanced RTMP (HEVC, AV1, VP9 in FLV): a FourCC follows.
			const fourCc = body.length >= 5 ? body.toString('latin1', 1, 5) : '?';
			throw new UnsupportedMediaError(`video codec "${fourCc}" (enhanced RTMP) is not supported; send H264 (in OBS: encoder x264 or a hardware H264 encoder)`);
		}
		const codecId = body[0]! & 0x0f;
		if (codecId !== 7) {
			throw new UnsupportedMediaError(`video codec ${VIDEO_CODEC_NAMES[codecId] ?? `id ${codecId}`} is not supported; send H264`);
		}
		if (frameType === 5) return undefined; // video info / command frame: no picture
		if (body.length < 5) return undefined;
		const packetType = body[1]!;
		// Composition time offset: signed 24 bits.
		const cts = (body.readUIntBE(2, 3) << 8) >> 8;
		if (packetType === 0) {
			// FFmpeg remuxing MPEG-TS (the SRT path) writes an empty header first: the parameter sets come in-band.
			if (body.length > 5) this.#avc = readAvcConfig(body.subarray(5));
			return undefined;
		}
		if (packetType !== 1) return undefined; // 2: end of sequence
		if (cts !== 0) this.#bFramesSeen = true;
		// Without a header, 4-byte lengths: what FFmpeg's FLV muxer writes.
		const nals = splitLengthPrefixed(body.subarray(5), this.#avc?.lengthSize ?? 4);
		const keyframe = frameType === 1 || nals.some((n) => (n[0]! & 0x1f) === NAL_IDR);
		const parts: Buffer[] = [];
		const inBand = nals.filter((n) => (n[0]! & 0x1f) === NAL_SPS || (n[0]! & 0x1f) === NAL_PPS);
		if (inBand.length > 0) {
			// In-band parameter sets are the newest: later keyframes without them get these.
			this.#avc = { lengthSize: this.#avc?.lengthSize ?? 4, parameterSets: inBand.map((n) => Buffer.from(n)) };
		} else if (keyframe) {
			if (!this.#avc) return undefined; // a keyframe nothing can decode: no SPS/PPS yet
			for (const ps of this.#avc.parameterSets) parts.push(START_CODE, ps);
		}
		for (const nal of nals) {
			if ((nal[0]! & 0x1f) === NAL_AUD) continue;
			parts.push(START_CODE, nal);
		}
		if (parts.length === 0) return undefined;
		return { kind: 'video', keyframe, dtsMs: timestampMs, ptsMs: timestampMs + cts, data: Buffer.concat(parts) };
	}

	#audio(timestampMs: number, body: Buffer): AudioFrame | undefined {
		if (body.length < 2) return undefined;
		const format = body[0]! >> 4;
		if (format !== 10) {
			throw new UnsupportedMediaError(`audio codec ${AUDIO_CODEC_NAMES[format] ?? `id ${format}`} is not supported; send AAC (or no audio)`);
		}
		if (body[1] === 0) {
			// An empty header (FFmpeg remuxing ADTS, before its first frame) is followed by a real one.
			if (body.length >= 4) this.#aac = Buffer.from(body.subarray(2));
			return undefined;
		}
		if (!this.#aac || body.length <= 2) return undefined;
		return { kind: 'audio', ptsMs: timestampMs, data: Buffer.from(body.subarray(2)), config: this.#aac };
	}

	#script(body: Buffer): void {
		let values: Amf0Value[];
		try {
			values = decodeAmf0(body);
		} catch {
			return; // metadata is a hint only
		}
		const at = values.findIndex((v) => v === 'onMetaData');
		const meta = at >= 0 ? values[at + 1] : undefined;
		if (meta && typeof meta === 'object' && !Array.isArray(meta) && !(meta instanceof Date)) {
			const audio = (meta as Record<string, Amf0Value>).audiocodecid;
			if (audio !== undefined && audio !== null && audio !== 0 && audio !== '') this.#metadata.audio = true;
		}
	}
}

/** AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1): NAL length size, SPS and PPS. */
export function readAvcConfig(record: Buffer): AvcConfig {
	const bad = (): never => {
		throw new UnsupportedMediaError('the H264 sequence header (AVCDecoderConfigurationRecord) is malformed; the encoder sent a broken stream');
	};
	if (record.length < 7 || record[0] !== 1) bad();
	const lengthSize = (record[4]! & 0x03) + 1;
	if (lengthSize === 3) bad();
	const parameterSets: Buffer[] = [];
	let at = 5;
	const readSets = (count: number): void => {
		for (let i = 0; i < count; i++) {
			if (at + 2 > record.length) bad();
			const size = record.readUInt16BE(at);
			at += 2;
			if (size === 0 || at + size > record.length) bad();
			parameterSets.push(Buffer.from(record.subarray(at, at + size)));
			at += size;
		}
	};
	readSets(record[at++]! & 0x1f);
	if (at >= record.length) bad();
	readSets(record[at++]!);
	if (!parameterSets.some((p) => (p[0]! & 0x1f) === NAL_SPS) || !parameterSets.some((p) => (p[0]! & 0x1f) === NAL_PPS)) bad();
	return { lengthSize, parameterSets };
}

function splitLengthPrefixed(data: Buffer, lengthSize: number): Buffer[] {
	const nals: Buffer[] = [];
	let at = 0;
	while (at + lengthSize <= data.length) {
		const size = data.readUIntBE(at, lengthSize);
		at += lengthSize;
		if (size === 0) continue;
		if (at + size > data.length) throw new UnsupportedMediaError('an H264 frame is cut short (a NAL unit runs past its tag); the encoder sent a broken stream');
		nals.push(data.subarray(at, at + size));
		at += size;
	}
	return nals;
}

/** Largest FLV tag accepted from FFmpeg's output (a 4K keyframe is a few MB). */
const MAX_TAG_BYTES = 16 * 1024 * 1024;

/**
 * An FLV byte stream (file header, then tags) read in pieces as they arrive,
 * handing each tag on whole. Throws UnsupportedMediaError on a stream that is
 * not FLV.
 */
export class FlvStreamReader {
	readonly #onTag: (type: number, timestampMs: number, body: Buffer) => void;
	#buffer: Buffer = Buffer.alloc(0);
	#headerDone = false;

	constructor(onTag: (type: number, timestampMs: number, body: Buffer) => void) {
		this.#onTag = onTag;
	}

	push(chunk: Buffer): void {
		this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
		if (!this.#headerDone) {
			if (this.#buffer.length < 13) return;
			if (this.#buffer.toString('latin1', 0, 3) !== 'FLV') throw new UnsupportedMediaError('not an FLV stream');
			const headerSize = this.#buffer.readUInt32BE(5);
			if (this.#buffer.length < headerSize + 4) return;
			this.#buffer = this.#buffer.subarray(headerSize + 4);
			this.#headerDone = true;
		}
		while (this.#buffer.length >= 11) {
			const size = this.#buffer.readUIntBE(1, 3);
			if (size > MAX_TAG_BYTES) throw new UnsupportedMediaError(`an FLV tag of ${size} bytes is larger than ${MAX_TAG_BYTES}`);
			if (this.#buffer.length < 11 + size + 4) return;
			const type = this.#buffer[0]! & 0x1f;
			const timestamp = (this.#buffer.readUIntBE(4, 3) | (this.#buffer[7]! << 24)) >>> 0;
			const body = Buffer.from(this.#buffer.subarray(11, 11 + size));
			this.#buffer = this.#buffer.subarray(11 + size + 4);
			this.#onTag(type, timestamp, body);
		}
	}
}
