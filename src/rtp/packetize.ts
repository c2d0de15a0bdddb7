/**
 * Packetizers: codec frames to RTP payloads no larger than the MTU, and the RtpSender that turns one frame's payloads
 * into numbered RTP packets. VP8 per RFC 7741 (always with a 15-bit picture ID), H264 per RFC 6184
 * packetization-mode 1 (single NAL units, STAP-A for SPS+PPS, FU-A for big NALs), Opus per RFC 7587.
 */
import type { CodecName } from '../codecs.js';
import { NAL_FU_A, NAL_PPS, NAL_SPS, NAL_STAP_A } from './depacketize.js';
import { serializeRtp } from './packet.js';

export interface Packetizer {
	/** Payloads for one frame, each <= mtu (an Opus packet is never split: it goes whole). */
	packetize(frame: Buffer, keyframe: boolean): Buffer[];
}

export interface PacketizerOptions {
	/** VP8 only: the picture ID of the first frame (15 bits), e.g. to continue after a restart. Default random. */
	firstPictureId?: number;
}

export function packetizerFor(codec: CodecName, mtu = 1200, options: PacketizerOptions = {}): Packetizer {
	switch (codec) {
		case 'VP8':
			return new Vp8Packetizer(mtu, options.firstPictureId);
		case 'H264':
			return new H264Packetizer(mtu);
		case 'opus':
			return { packetize: (frame) => [frame] };
	}
	throw new TypeError(`no packetizer for codec ${String(codec)}: use VP8, H264 or opus`);
}

function checkMtu(mtu: number, min: number): void {
	if (!Number.isInteger(mtu) || mtu < min || mtu > 65_000) throw new TypeError(`packetizer mtu must be an integer in ${min}..65000, got ${mtu}`);
}

/**
 * Descriptor bytes written by Vp8Packetizer: X=1 | S | PID 0; I=1, L=1, T=1; M=1 + 15-bit picture ID; TL0PICIDX;
 * TID 0, Y=1.
 */
const VP8_DESCRIPTOR_SIZE = 6;

/**
 * VP8 (RFC 7741). Every packet carries a 15-bit picture ID (I=1, M=1), incremented per frame: mediasoup
 * 3.12.16's prebuilt worker drops VP8 without picture IDs. It also carries TL0PICIDX (L=1) and a temporal layer
 * index 0 (T=1): with both, mediasoup's simulcast consumers rewrite picture IDs to run on without a jump when a
 * viewer is switched between the layers of a ladder (as browsers' own simulcast does). The first packet of each
 * frame has S=1, PID=0.
 */
export class Vp8Packetizer implements Packetizer {
	readonly #chunk: number;
	#pictureId: number;
	/** Every picture is on temporal layer 0, so TL0PICIDX counts pictures (8 bits). */
	#tl0PictureIndex: number;

	constructor(mtu = 1200, firstPictureId = Math.floor(Math.random() * 0x8000)) {
		checkMtu(mtu, VP8_DESCRIPTOR_SIZE + 1);
		this.#chunk = mtu - VP8_DESCRIPTOR_SIZE;
		this.#pictureId = firstPictureId & 0x7fff;
		this.#tl0PictureIndex = firstPictureId & 0xff;
	}

	/** Picture ID the next frame gets. */
	get nextPictureId(): number {
		return this.#pictureId;
	}

	packetize(frame: Buffer): Buffer[] {
		if (frame.length === 0) return [];
		const pictureId = this.#pictureId;
		this.#pictureId = (pictureId + 1) & 0x7fff;
		const tl0PictureIndex = this.#tl0PictureIndex;
		this.#tl0PictureIndex = (tl0PictureIndex + 1) & 0xff;
		// Even sizes: n packets of about the same length rather than full ones and a runt.
		const count = Math.ceil(frame.length / this.#chunk);
		const size = Math.ceil(frame.length / count);
		const out: Buffer[] = [];
		for (let offset = 0; offset < frame.length; offset += size) {
			const end = Math.min(frame.length, offset + size);
			const p = Buffer.allocUnsafe(VP8_DESCRIPTOR_SIZE + end - offset);
			p[0] = 0x80 | (offset === 0 ? 0x10 : 0);
			p[1] = 0xe0;
			p[2] = 0x80 | (pictureId >> 8);
			p[3] = pictureId & 0xff;
			p[4] = tl0PictureIndex;
			p[5] = 0x20;
			frame.copy(p, VP8_DESCRIPTOR_SIZE, offset, end);
			out.push(p);
		}
		return out;
	}
}

/** NAL units of an Annex B byte stream (3- or 4-byte start codes), as views; trailing zero bytes are dropped. */
export function splitAnnexB(data: Buffer): Buffer[] {
	const nals: Buffer[] = [];
	let start = -1;
	let i = 0;
	const push = (end: number): void => {
		while (end > start && data[end - 1] === 0) end--;
		if (end > start) nals.push(data.subarray(start, end));
	};
	while (i + 2 < data.length) {
		if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
			if (start >= 0) push(i);
			i += 3;
			start = i;
			continue;
		}
		i++;
	}
	if (start >= 0) push(data.length);
	return nals;
}

/**
 * H264 (RFC 6184, packetization-mode 1). Input is an Annex B access unit. Consecutive SPS/PPS go together in one
 * STAP-A, other NAL units up to the MTU as single NAL unit packets, bigger ones as FU-A fragments of even size.
 */
export class H264Packetizer implements Packetizer {
	readonly #mtu: number;

	constructor(mtu = 1200) {
		checkMtu(mtu, 3);
		this.#mtu = mtu;
	}

	packetize(frame: Buffer): Buffer[] {
		const nals = splitAnnexB(frame);
		const out: Buffer[] = [];
		for (let i = 0; i < nals.length; i++) {
			const nal = nals[i]!;
			// A run of parameter sets that fits in one STAP-A (1 byte header + 2-byte size per NAL).
			let j = i;
			let stapSize = 1;
			while (j < nals.length && isParameterSet(nals[j]!) && stapSize + 2 + nals[j]!.length <= this.#mtu) {
				stapSize += 2 + nals[j]!.length;
				j++;
			}
			if (j - i >= 2) {
				out.push(stapA(nals.slice(i, j), stapSize));
				i = j - 1;
				continue;
			}
			if (nal.length <= this.#mtu) out.push(nal);
			else this.#fuA(nal, out);
		}
		return out;
	}

	#fuA(nal: Buffer, out: Buffer[]): void {
		const indicator = (nal[0]! & 0xe0) | NAL_FU_A;
		const type = nal[0]! & 0x1f;
		const body = nal.length - 1;
		const count = Math.ceil(body / (this.#mtu - 2));
		const size = Math.ceil(body / count);
		for (let offset = 1; offset < nal.length; offset += size) {
			const end = Math.min(nal.length, offset + size);
			const p = Buffer.allocUnsafe(2 + end - offset);
			p[0] = indicator;
			p[1] = (offset === 1 ? 0x80 : 0) | (end === nal.length ? 0x40 : 0) | type;
			nal.copy(p, 2, offset, end);
			out.push(p);
		}
	}
}

function isParameterSet(nal: Buffer): boolean {
	const type = nal[0]! & 0x1f;
	return type === NAL_SPS || type === NAL_PPS;
}

function stapA(nals: Buffer[], size: number): Buffer {
	const p = Buffer.allocUnsafe(size);
	// F is the OR of the aggregated NALs' F bits, NRI their maximum (RFC 6184 §5.7.1).
	let f = 0;
	let nri = 0;
	for (const nal of nals) {
		f |= nal[0]! & 0x80;
		nri = Math.max(nri, nal[0]! & 0x60);
	}
	p[0] = f | nri | NAL_STAP_A;
	let at = 1;
	for (const nal of nals) {
		p.writeUInt16BE(nal.length, at);
		at += 2 + nal.copy(p, at + 2);
	}
	return p;
}

export interface RtpSenderOptions {
	ssrc: number;
	payloadType: number;
	firstSequenceNumber: number;
}

/** Numbers one stream's packets: consecutive sequence numbers, marker on the last packet of each frame; counts for SRs. */
export class RtpSender {
	readonly #ssrc: number;
	readonly #payloadType: number;
	#seq: number;
	#packetCount = 0;
	#octetCount = 0;

	constructor(o: RtpSenderOptions) {
		if (!Number.isInteger(o.ssrc) || o.ssrc < 0 || o.ssrc > 0xffffffff) throw new TypeError(`RtpSender ssrc must be a 32-bit unsigned integer, got ${o.ssrc}`);
		if (!Number.isInteger(o.payloadType) || o.payloadType < 0 || o.payloadType > 127 || (o.payloadType >= 64 && o.payloadType <= 95)) {
			throw new TypeError(`RtpSender payloadType must be an integer in 0..63 or 96..127 (64..95 clash with RTCP), got ${o.payloadType}`);
		}
		if (!Number.isInteger(o.firstSequenceNumber)) throw new TypeError(`RtpSender firstSequenceNumber must be an integer, got ${o.firstSequenceNumber}`);
		this.#ssrc = o.ssrc;
		this.#payloadType = o.payloadType;
		this.#seq = o.firstSequenceNumber & 0xffff;
	}

	/** full RTP packets for one frame: marker on its last packet */
	packets(payloads: Buffer[], timestamp: number): Buffer[] {
		const out: Buffer[] = [];
		for (let i = 0; i < payloads.length; i++) {
			const payload = payloads[i]!;
			out.push(serializeRtp({ payloadType: this.#payloadType, sequenceNumber: this.#seq, timestamp, ssrc: this.#ssrc, marker: i === payloads.length - 1, payload }));
			this.#seq = (this.#seq + 1) & 0xffff;
			this.#packetCount += 1;
			this.#octetCount += payload.length;
		}
		return out;
	}

	/** Sequence number of the next packet (what a restarted sender continues from). */
	get nextSequenceNumber(): number {
		return this.#seq;
	}

	get packetCount(): number {
		return this.#packetCount;
	}

	/** Payload octets sent (RFC 3550's sender octet count: headers excluded). */
	get octetCount(): number {
		return this.#octetCount;
	}
}
