/**
 * RTCP (RFC 3550, feedback per RFC 4585 and RFC 5104): parsing of compound packets and building of the few messages
 * the re-encoder engine sends (PLI, FIR, generic NACK, RR, SR).
 */
import { seqDiff } from './packet.js';

/** One reception report block of an SR or RR (RFC 3550 §6.4.1). */
export interface RtcpReportBlock {
	/** SSRC of the source this block reports on. */
	ssrc: number;
	/** Fraction of packets lost since the previous report, 0-255 (fixed point /256). */
	fractionLost: number;
	/** Cumulative packets lost (24-bit signed on the wire). */
	cumulativeLost: number;
	/** Extended highest sequence number received (cycles << 16 | seq). */
	highestSeq: number;
	/** Interarrival jitter in timestamp units. */
	jitter: number;
	/** Middle 32 bits of the NTP timestamp of the last SR received from that source, 0 if none. */
	lsr: number;
	/** Delay since that SR, in 1/65536 s, 0 if none. */
	dlsr: number;
}

export type RtcpMessage =
	| { type: 'pli'; senderSsrc: number; mediaSsrc: number }
	/** One message per FCI entry; mediaSsrc is the FCI's SSRC (the common header's media SSRC is 0 for FIR). */
	| { type: 'fir'; senderSsrc: number; mediaSsrc: number; seq: number }
	/** Generic NACK with its PID/BLP pairs expanded into sequence numbers, in packet order. */
	| { type: 'nack'; senderSsrc: number; mediaSsrc: number; seqs: number[] }
	| {
			type: 'sr';
			ssrc: number;
			/** Wall clock of the report in ms since the Unix epoch (the 64-bit NTP timestamp converted, see ntpToMs). */
			ntpMs: number;
			/** Middle 32 bits of the NTP timestamp: what a receiver echoes as LSR. */
			ntpMiddle: number;
			rtpTimestamp: number;
			packetCount: number;
			octetCount: number;
			reports: RtcpReportBlock[];
	  }
	| { type: 'rr'; ssrc: number; reports: RtcpReportBlock[] }
	/** Anything else (SDES, BYE, APP, XR, other feedback): packet type, count/FMT field, and the sender SSRC if present. */
	| { type: 'other'; packetType: number; fmt: number; ssrc: number | undefined };

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;
export const RTCP_RTPFB = 205;
export const RTCP_PSFB = 206;
const FMT_NACK = 1;
const FMT_PLI = 1;
const FMT_FIR = 4;

/** Seconds between the NTP epoch (1900) and the Unix epoch (1970). */
const NTP_UNIX_OFFSET_S = 2_208_988_800;
const TWO_32 = 0x1_0000_0000;

/** 64-bit NTP timestamp (seconds since 1900, fraction) to ms since the Unix epoch. */
export function ntpToMs(seconds: number, fraction: number): number {
	return (seconds - NTP_UNIX_OFFSET_S) * 1000 + (fraction / TWO_32) * 1000;
}

/** Ms since the Unix epoch (e.g. Date.now()) to the 64-bit NTP timestamp's two 32-bit words. */
export function msToNtp(ms: number): { seconds: number; fraction: number } {
	const totalS = ms / 1000 + NTP_UNIX_OFFSET_S;
	const seconds = Math.floor(totalS);
	let fraction = Math.round((totalS - seconds) * TWO_32);
	if (fraction >= TWO_32) fraction = TWO_32 - 1;
	return { seconds: seconds >>> 0, fraction: fraction >>> 0 };
}

/** Middle 32 bits of the NTP timestamp of a wall clock in ms (the LSR a receiver echoes for an SR sent then). */
export function ntpMiddleOf(ms: number): number {
	const { seconds, fraction } = msToNtp(ms);
	return (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0;
}

/**
 * Parses a compound RTCP packet into its messages. Never throws: parsing stops at the first packet whose header is
 * not RTCP version 2 or whose length runs past the buffer, and what was parsed before is returned.
 */
export function parseRtcp(buf: Buffer): RtcpMessage[] {
	const out: RtcpMessage[] = [];
	let offset = 0;
	while (offset + 4 <= buf.length) {
		const b0 = buf[offset]!;
		if (b0 >> 6 !== 2) break;
		const packetType = buf[offset + 1]!;
		if (packetType < 192 || packetType > 223) break;
		const size = (buf.readUInt16BE(offset + 2) + 1) * 4;
		if (offset + size > buf.length) break;
		let end = offset + size;
		if (b0 & 0x20) {
			// Padding (only allowed on the last packet of a compound, but harmless to honour anywhere).
			const padding = buf[end - 1]!;
			if (padding === 0 || padding > size - 4) break;
			end -= padding;
		}
		parseOne(buf, offset, end, b0 & 0x1f, packetType, out);
		offset += size;
	}
	return out;
}

function parseOne(buf: Buffer, start: number, end: number, fmt: number, packetType: number, out: RtcpMessage[]): void {
	const body = start + 4;
	const ssrcOrUndefined = end >= body + 4 ? buf.readUInt32BE(body) : undefined;
	switch (packetType) {
		case RTCP_SR: {
			if (end < body + 24) break;
			const seconds = buf.readUInt32BE(body + 4);
			const fraction = buf.readUInt32BE(body + 8);
			out.push({
				type: 'sr',
				ssrc: buf.readUInt32BE(body),
				ntpMs: ntpToMs(seconds, fraction),
				ntpMiddle: (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0,
				rtpTimestamp: buf.readUInt32BE(body + 12),
				packetCount: buf.readUInt32BE(body + 16),
				octetCount: buf.readUInt32BE(body + 20),
				reports: parseReportBlocks(buf, body + 24, end, fmt),
			});
			return;
		}
		case RTCP_RR: {
			if (end < body + 4) break;
			out.push({ type: 'rr', ssrc: buf.readUInt32BE(body), reports: parseReportBlocks(buf, body + 4, end, fmt) });
			return;
		}
		case RTCP_RTPFB: {
			if (fmt !== FMT_NACK || end < body + 8) break;
			const seqs: number[] = [];
			for (let o = body + 8; o + 4 <= end; o += 4) {
				const pid = buf.readUInt16BE(o);
				const blp = buf.readUInt16BE(o + 2);
				seqs.push(pid);
				for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) seqs.push((pid + bit + 1) & 0xffff);
			}
			out.push({ type: 'nack', senderSsrc: buf.readUInt32BE(body), mediaSsrc: buf.readUInt32BE(body + 4), seqs });
			return;
		}
		case RTCP_PSFB: {
			if (end < body + 8) break;
			const senderSsrc = buf.readUInt32BE(body);
			if (fmt === FMT_PLI) {
				out.push({ type: 'pli', senderSsrc, mediaSsrc: buf.readUInt32BE(body + 4) });
				return;
			}
			if (fmt === FMT_FIR) {
				let any = false;
				for (let o = body + 8; o + 8 <= end; o += 8) {
					out.push({ type: 'fir', senderSsrc, mediaSsrc: buf.readUInt32BE(o), seq: buf[o + 4]! });
					any = true;
				}
				if (any) return;
			}
			break;
		}
	}
	out.push({ type: 'other', packetType, fmt, ssrc: ssrcOrUndefined });
}

function parseReportBlocks(buf: Buffer, offset: number, end: number, count: number): RtcpReportBlock[] {
	const reports: RtcpReportBlock[] = [];
	for (let i = 0; i < count && offset + 24 <= end; i++, offset += 24) {
		reports.push({
			ssrc: buf.readUInt32BE(offset),
			fractionLost: buf[offset + 4]!,
			cumulativeLost: buf.readIntBE(offset + 5, 3),
			highestSeq: buf.readUInt32BE(offset + 8),
			jitter: buf.readUInt32BE(offset + 12),
			lsr: buf.readUInt32BE(offset + 16),
			dlsr: buf.readUInt32BE(offset + 20),
		});
	}
	return reports;
}

/** Common header for a packet of `words32` 32-bit words in total (the length field is that minus one). */
function header(packetType: number, countOrFmt: number, words32: number): Buffer {
	const buf = Buffer.alloc(words32 * 4);
	buf[0] = 0x80 | (countOrFmt & 0x1f);
	buf[1] = packetType;
	buf.writeUInt16BE(words32 - 1, 2);
	return buf;
}

/** Picture Loss Indication (RFC 4585 §6.3.1). */
export function buildPli(senderSsrc: number, mediaSsrc: number): Buffer {
	const buf = header(RTCP_PSFB, FMT_PLI, 3);
	buf.writeUInt32BE(senderSsrc >>> 0, 4);
	buf.writeUInt32BE(mediaSsrc >>> 0, 8);
	return buf;
}

/** Full Intra Request (RFC 5104 §4.3.1): media SSRC of the common header is 0, the target goes in the FCI. */
export function buildFir(senderSsrc: number, mediaSsrc: number, seq: number): Buffer {
	const buf = header(RTCP_PSFB, FMT_FIR, 5);
	buf.writeUInt32BE(senderSsrc >>> 0, 4);
	buf.writeUInt32BE(0, 8);
	buf.writeUInt32BE(mediaSsrc >>> 0, 12);
	buf[16] = seq & 0xff;
	return buf;
}

/**
 * Generic NACK (RFC 4585 §6.2.1): the sequence numbers (any order, duplicates allowed) packed into PID + BLP pairs,
 * where bit i of BLP (least significant = 0) marks PID + i + 1 as lost too. Sorting is wraparound-aware, relative to
 * the first sequence number given, so seqs must lie within 32767 of it (always true for one stream's gaps).
 */
export function buildNack(senderSsrc: number, mediaSsrc: number, seqs: number[]): Buffer {
	if (seqs.length === 0) throw new TypeError('buildNack needs at least one sequence number (a NACK without FCI is invalid)');
	const ref = seqs.length > 0 ? seqs[0]! & 0xffff : 0;
	const sorted = seqs.map((s) => s & 0xffff).sort((a, b) => seqDiff(a, ref) - seqDiff(b, ref));
	const pairs: number[] = [];
	let pid = -1;
	let blp = 0;
	for (const s of sorted) {
		if (pid >= 0) {
			const d = seqDiff(s, pid);
			if (d === 0) continue;
			if (d <= 16) {
				blp |= 1 << (d - 1);
				continue;
			}
			pairs.push(pid, blp);
		}
		pid = s;
		blp = 0;
	}
	if (pid >= 0) pairs.push(pid, blp);
	const buf = header(RTCP_RTPFB, FMT_NACK, 3 + pairs.length / 2);
	buf.writeUInt32BE(senderSsrc >>> 0, 4);
	buf.writeUInt32BE(mediaSsrc >>> 0, 8);
	for (let i = 0; i < pairs.length; i += 2) {
		buf.writeUInt16BE(pairs[i]!, 12 + i * 2);
		buf.writeUInt16BE(pairs[i + 1]! & 0xffff, 14 + i * 2);
	}
	return buf;
}

function writeReportBlock(buf: Buffer, offset: number, b: RtcpReportBlock): void {
	buf.writeUInt32BE(b.ssrc >>> 0, offset);
	buf[offset + 4] = Math.max(0, Math.min(255, Math.round(b.fractionLost)));
	buf.writeIntBE(Math.max(-0x800000, Math.min(0x7fffff, Math.round(b.cumulativeLost))), offset + 5, 3);
	buf.writeUInt32BE(b.highestSeq >>> 0, offset + 8);
	buf.writeUInt32BE(b.jitter >>> 0, offset + 12);
	buf.writeUInt32BE(b.lsr >>> 0, offset + 16);
	buf.writeUInt32BE(b.dlsr >>> 0, offset + 20);
}

/** Receiver Report with at most one report block (none: an empty RR, valid as a keep-alive). */
export function buildReceiverReport(senderSsrc: number, block?: RtcpReportBlock): Buffer {
	const buf = header(RTCP_RR, block ? 1 : 0, block ? 8 : 2);
	buf.writeUInt32BE(senderSsrc >>> 0, 4);
	if (block) writeReportBlock(buf, 8, block);
	return buf;
}

/**
 * Sender Report without report blocks. ntpMs is the wall clock in ms since the Unix epoch (Date.now() scale) at the
 * instant rtpTimestamp refers to; octetCount counts payload octets only (RFC 3550 §6.4.1).
 */
export function buildSenderReport(
	ssrc: number,
	ntpMs: number,
	rtpTimestamp: number,
	packetCount: number,
	octetCount: number,
): Buffer {
	const buf = header(RTCP_SR, 0, 7);
	const { seconds, fraction } = msToNtp(ntpMs);
	buf.writeUInt32BE(ssrc >>> 0, 4);
	buf.writeUInt32BE(seconds, 8);
	buf.writeUInt32BE(fraction, 12);
	buf.writeUInt32BE(rtpTimestamp >>> 0, 16);
	buf.writeUInt32BE(packetCount >>> 0, 20);
	buf.writeUInt32BE(octetCount >>> 0, 24);
	return buf;
}
