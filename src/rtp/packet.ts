/**
 * RTP packets (RFC 3550): parsing, serialising, RTP/RTCP demultiplexing (RFC 5761) and 16-bit sequence arithmetic.
 *
 * Parsing never copies: the payload is a view (`subarray`) into the received buffer, so a caller must not reuse that
 * buffer while the packet is held (Node's dgram hands each message a fresh Buffer, which is what we rely on).
 */

export interface RtpPacket {
	payloadType: number;
	sequenceNumber: number;
	timestamp: number;
	ssrc: number;
	marker: boolean;
	payload: Buffer;
}

const RTP_HEADER_SIZE = 12;

/**
 * Parses one RTP packet: version 2, CSRCs, header extension and padding skipped. Returns undefined for anything
 * malformed (too short, wrong version, lengths past the end) and for RTCP (payload types 64-95 with the marker bit,
 * see {@link isRtcp}), so that a packet that is not RTP never reaches a jitter buffer.
 */
export function parseRtp(buf: Buffer): RtpPacket | undefined {
	if (buf.length < RTP_HEADER_SIZE) return undefined;
	const b0 = buf[0]!;
	if (b0 >> 6 !== 2) return undefined;
	if (isRtcp(buf)) return undefined;
	const csrcCount = b0 & 0x0f;
	let offset = RTP_HEADER_SIZE + 4 * csrcCount;
	if (b0 & 0x10) {
		// Header extension: 16-bit profile, 16-bit length in 32-bit words, then the words.
		if (buf.length < offset + 4) return undefined;
		offset += 4 + 4 * buf.readUInt16BE(offset + 2);
	}
	let end = buf.length;
	if (b0 & 0x20) {
		const padding = buf[end - 1]!;
		if (padding === 0) return undefined;
		end -= padding;
	}
	if (end < offset) return undefined;
	const b1 = buf[1]!;
	return {
		payloadType: b1 & 0x7f,
		marker: (b1 & 0x80) !== 0,
		sequenceNumber: buf.readUInt16BE(2),
		timestamp: buf.readUInt32BE(4),
		ssrc: buf.readUInt32BE(8),
		payload: buf.subarray(offset, end),
	};
}

/** Serialises a packet with a plain 12-byte header (no CSRCs, no extension, no padding). */
export function serializeRtp(p: RtpPacket): Buffer {
	const buf = Buffer.allocUnsafe(RTP_HEADER_SIZE + p.payload.length);
	buf[0] = 0x80;
	buf[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
	buf.writeUInt16BE(p.sequenceNumber & 0xffff, 2);
	buf.writeUInt32BE(p.timestamp >>> 0, 4);
	buf.writeUInt32BE(p.ssrc >>> 0, 8);
	p.payload.copy(buf, RTP_HEADER_SIZE);
	return buf;
}

/**
 * RFC 5761 demultiplexing of RTP and RTCP on one port: RTCP packet types 192-223 put 64-95 in the low 7 bits of the
 * second byte, where RTP has its payload type (which must therefore avoid 64-95).
 */
export function isRtcp(buf: Buffer): boolean {
	if (buf.length < 2) return false;
	const pt = buf[1]! & 0x7f;
	return pt >= 64 && pt <= 95;
}

/** Signed distance a - b between two 16-bit sequence numbers, in [-32768, 32767] (wraparound-aware). */
export function seqDiff(a: number, b: number): number {
	return (((a - b) & 0xffff) << 16) >> 16;
}

/** True if sequence number a comes after b (RFC 3550 wraparound: less than half the space ahead). */
export function seqNewer(a: number, b: number): boolean {
	return seqDiff(a, b) > 0;
}
