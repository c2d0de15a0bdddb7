/**
 * Depacketizers: from RTP payloads back to codec frames. VP8 per RFC 7741, H264 per RFC 6184 packetization-mode 1
 * (single NAL unit, STAP-A, FU-A), Opus per RFC 7587 (one packet, one frame).
 */
import type { CodecName } from '../codecs.js';

export interface Depacketizer {
	/** true if this payload starts a new frame */
	isFrameStart(payload: Buffer): boolean;
	/** true if the frame starting with this payload is a keyframe (only asked for start payloads) */
	isKeyframe(payload: Buffer): boolean;
	/**
	 * Keyframe test on a whole frame's payloads, for codecs where the first payload cannot tell (H264: the frame may
	 * start with SPS/PPS and carry its IDR slice later). When present, the jitter buffer uses it instead of isKeyframe.
	 */
	isKeyframeFrame?(payloads: readonly Buffer[]): boolean;
	/**
	 * The frame carries decoder configuration only (H264: SPS/PPS, maybe SEI/AUD, no slice), as some senders send it
	 * with a timestamp of its own. The jitter buffer then prepends it to the next frame instead of delivering it alone
	 * (where, before the first keyframe, it would be dropped as a non-keyframe and the keyframe would not decode).
	 */
	isConfigOnly?(payloads: readonly Buffer[]): boolean;
	/** Every payload is a whole frame (audio): frames end with their packet, whatever the marker bit says. */
	readonly singlePacketFrames?: boolean;
	/** bytes of the frame from its payloads in order (VP8: raw frame; H264: Annex B access unit with 00 00 00 01 start codes; Opus: the packet) */
	assemble(payloads: readonly Buffer[]): Buffer | undefined;
}

export function depacketizerFor(codec: CodecName): Depacketizer {
	switch (codec) {
		case 'VP8':
			return vp8Depacketizer;
		case 'H264':
			return h264Depacketizer;
		case 'opus':
			return opusDepacketizer;
	}
	throw new TypeError(`no depacketizer for codec ${String(codec)}: use VP8, H264 or opus`);
}

// ---------------------------------------------------------------------------------------------------------------
// VP8 (RFC 7741 §4.2)
//
//   0 1 2 3 4 5 6 7
//  +-+-+-+-+-+-+-+-+
//  |X|R|N|S|R| PID | (REQUIRED)
//  +-+-+-+-+-+-+-+-+
//  |I|L|T|K| RSV   | (OPTIONAL, present if X)
//  +-+-+-+-+-+-+-+-+
//  |M| PictureID   | (OPTIONAL, present if I; 15 bits if M)
//  +-+-+-+-+-+-+-+-+
//  |   PictureID   |
//  +-+-+-+-+-+-+-+-+
//  |   TL0PICIDX   | (OPTIONAL, present if L)
//  +-+-+-+-+-+-+-+-+
//  |TID|Y| KEYIDX  | (OPTIONAL, present if T or K)
//  +-+-+-+-+-+-+-+-+

/** Length of the VP8 payload descriptor, or -1 if the payload is too short to hold it (or holds nothing after it). */
export function vp8DescriptorLength(payload: Buffer): number {
	if (payload.length < 1) return -1;
	const b0 = payload[0]!;
	let offset = 1;
	if (b0 & 0x80) {
		if (payload.length < 2) return -1;
		const x = payload[1]!;
		offset = 2;
		if (x & 0x80) {
			if (payload.length < offset + 1) return -1;
			offset += payload[offset]! & 0x80 ? 2 : 1;
		}
		if (x & 0x40) offset += 1;
		if (x & 0x30) offset += 1;
	}
	return offset < payload.length ? offset : -1;
}

/** The 7- or 15-bit picture ID of a VP8 payload, or undefined if it carries none. */
export function vp8PictureId(payload: Buffer): number | undefined {
	if (vp8DescriptorLength(payload) < 0 || !(payload[0]! & 0x80) || !(payload[1]! & 0x80)) return undefined;
	const m = payload[2]!;
	return m & 0x80 ? ((m & 0x7f) << 8) | payload[3]! : m & 0x7f;
}

const vp8Depacketizer: Depacketizer = {
	isFrameStart(payload) {
		// S=1 and partition index 0: the first packet of the first partition.
		return payload.length > 0 && (payload[0]! & 0x1f) === 0x10 && vp8DescriptorLength(payload) > 0;
	},
	isKeyframe(payload) {
		const offset = vp8DescriptorLength(payload);
		// The VP8 payload header's first byte: |Size0|H|VER|P|, P = 0 on a keyframe (RFC 7741 §4.3).
		return offset > 0 && (payload[0]! & 0x1f) === 0x10 && (payload[offset]! & 0x01) === 0;
	},
	assemble(payloads) {
		if (payloads.length === 0 || !vp8Depacketizer.isFrameStart(payloads[0]!)) return undefined;
		let size = 0;
		for (const p of payloads) {
			const offset = vp8DescriptorLength(p);
			if (offset < 0) return undefined;
			size += p.length - offset;
		}
		const out = Buffer.allocUnsafe(size);
		let at = 0;
		for (const p of payloads) at += p.copy(out, at, vp8DescriptorLength(p));
		return out;
	},
};

// ---------------------------------------------------------------------------------------------------------------
// H264 (RFC 6184), packetization-mode 1.

export const NAL_SLICE = 1;
export const NAL_IDR = 5;
export const NAL_SEI = 6;
export const NAL_SPS = 7;
export const NAL_PPS = 8;
export const NAL_AUD = 9;
export const NAL_STAP_A = 24;
export const NAL_FU_A = 28;

const START_CODE = Buffer.from([0, 0, 0, 1]);

/** True if a NAL unit (header byte first) begins an access unit: AUD, SEI, SPS, PPS, or a slice with first_mb_in_slice 0. */
function nalStartsAccessUnit(type: number, firstPayloadByte: number | undefined): boolean {
	if (type === NAL_AUD || type === NAL_SEI || type === NAL_SPS || type === NAL_PPS) return true;
	// first_mb_in_slice is ue(v); it is 0 exactly when the first bit is 1.
	if (type === NAL_SLICE || type === NAL_IDR) return firstPayloadByte !== undefined && (firstPayloadByte & 0x80) !== 0;
	return false;
}

/** Calls fn for each NAL type (and whether it begins a NAL) visible in one payload; stops when fn returns true. */
function someH264Nal(payload: Buffer, fn: (type: number, nalStart: boolean, firstPayloadByte: number | undefined) => boolean): boolean {
	if (payload.length < 1) return false;
	const type = payload[0]! & 0x1f;
	if (type >= 1 && type <= 23) return fn(type, true, payload[1]);
	if (type === NAL_STAP_A) {
		for (let o = 1; o + 2 < payload.length; ) {
			const size = payload.readUInt16BE(o);
			if (size === 0 || o + 2 + size > payload.length) return false;
			if (fn(payload[o + 2]! & 0x1f, true, size > 1 ? payload[o + 3] : undefined)) return true;
			o += 2 + size;
		}
		return false;
	}
	if (type === NAL_FU_A) {
		if (payload.length < 2) return false;
		const fuHeader = payload[1]!;
		return fn(fuHeader & 0x1f, (fuHeader & 0x80) !== 0, payload[2]);
	}
	return false;
}

/**
 * Walks the payloads of one access unit, counting (and, with `out`, writing) the Annex B bytes. Returns the size, or
 * undefined for anything broken: unknown packet types, a STAP-A whose sizes overrun, an FU-A sequence without its
 * start or end, or an FU-A start while another is open.
 */
function walkH264(payloads: readonly Buffer[], out?: Buffer): number | undefined {
	let at = 0;
	let inFu = false;
	const put = (src: Buffer, start = 0, end = src.length): void => {
		if (out) src.copy(out, at, start, end);
		at += end - start;
	};
	for (const p of payloads) {
		if (p.length < 1) return undefined;
		const type = p[0]! & 0x1f;
		if (type === NAL_FU_A) {
			if (p.length < 3) return undefined;
			const fu = p[1]!;
			const start = (fu & 0x80) !== 0;
			const end = (fu & 0x40) !== 0;
			if (start) {
				if (inFu) return undefined;
				put(START_CODE);
				if (out) out[at] = (p[0]! & 0xe0) | (fu & 0x1f);
				at += 1;
				inFu = true;
			} else if (!inFu) {
				return undefined;
			}
			put(p, 2);
			if (end) inFu = false;
			continue;
		}
		if (inFu) return undefined;
		if (type >= 1 && type <= 23) {
			put(START_CODE);
			put(p);
		} else if (type === NAL_STAP_A) {
			let o = 1;
			while (o < p.length) {
				if (o + 2 > p.length) return undefined;
				const size = p.readUInt16BE(o);
				if (size === 0 || o + 2 + size > p.length) return undefined;
				put(START_CODE);
				put(p, o + 2, o + 2 + size);
				o += 2 + size;
			}
		} else {
			// STAP-B, MTAP, FU-B: not allowed in packetization-mode 1.
			return undefined;
		}
	}
	return inFu || at === 0 ? undefined : at;
}

const h264Depacketizer: Depacketizer = {
	isFrameStart(payload) {
		// A single NAL, the first NAL of a STAP-A, or the NAL an FU-A starts decides.
		let starts = false;
		someH264Nal(payload, (type, nalStart, firstByte) => {
			starts = nalStart && nalStartsAccessUnit(type, firstByte);
			return true;
		});
		return starts;
	},
	isKeyframe(payload) {
		return someH264Nal(payload, (t) => t === NAL_IDR);
	},
	isKeyframeFrame(payloads) {
		return payloads.some((p) => someH264Nal(p, (t) => t === NAL_IDR));
	},
	isConfigOnly(payloads) {
		let parameterSets = false;
		for (const p of payloads) {
			const slice = someH264Nal(p, (t) => {
				if (t === NAL_SPS || t === NAL_PPS) parameterSets = true;
				return t !== NAL_SPS && t !== NAL_PPS && t !== NAL_SEI && t !== NAL_AUD;
			});
			if (slice) return false;
		}
		return parameterSets;
	},
	assemble(payloads) {
		const size = walkH264(payloads);
		if (size === undefined) return undefined;
		const out = Buffer.allocUnsafe(size);
		walkH264(payloads, out);
		return out;
	},
};

// ---------------------------------------------------------------------------------------------------------------
// Opus (RFC 7587): one packet, one frame; every frame decodes on its own.

const opusDepacketizer: Depacketizer = {
	singlePacketFrames: true,
	isFrameStart: () => true,
	isKeyframe: () => true,
	assemble(payloads) {
		return payloads.length === 1 && payloads[0]!.length > 0 ? payloads[0] : undefined;
	},
};
