/**
 * Per-stream receive buffer: reorders RTP packets, assembles frames, schedules NACKs for gaps and gives a frame up
 * when its missing packets do not come in time. Decoding starts at the FIRST keyframe received, however the packets
 * around it arrive (reordered, or after a few delta frames).
 *
 * Sequence numbers are unwrapped into "extended" numbers (a plain, ever-growing integer) so that 16-bit wraparound
 * never reaches the logic. Packets live in a fixed ring of `maxPackets` slots indexed by extended sequence number: the
 * window between the decode cursor and the highest sequence number seen never grows beyond it (the oldest state is
 * given up instead), so memory is bounded whatever arrives, and no per-packet allocation happens beyond the caller's
 * packet object (kept until its frame leaves; the payload is referenced, not copied).
 *
 * Feed it one media stream only (one SSRC, one payload type; RTX unwrapped or disabled).
 */
import type { Depacketizer } from './depacketize.js';
import type { RtpPacket } from './packet.js';
import { seqDiff } from './packet.js';

export interface EncodedFrame {
	data: Buffer;
	/** RTP timestamp */
	timestamp: number;
	keyframe: boolean;
	/** now() of the frame's last packet (the latest arrival among its packets) */
	receivedAt: number;
	firstSeq: number;
	lastSeq: number;
	/** true when frames were lost just before this one (unrepaired loss); decoders' reference chain is broken unless keyframe */
	afterLoss: boolean;
}

export interface JitterBufferOptions {
	depacketizer: Depacketizer;
	/** Wait before the first NACK of a gap, ms (reordering on loopback is rare). Default 5. */
	nackDelayMs?: number;
	/** Wait between NACK retries of one sequence number, ms. Default 40. */
	nackIntervalMs?: number;
	/** NACKs per missing sequence number at most. Default 5. */
	maxNackRetries?: number;
	/** How long a frame waits for missing packets before it is given up, ms. Default 200. */
	maxWaitMs?: number;
	/** Packets held at most (the window from the oldest undelivered to the newest). Default 2000. */
	maxPackets?: number;
	/** A sequence jump larger than this (either way) or a new SSRC, confirmed by a second packet, is a new stream: reset. Default 1000. */
	maxSeqJump?: number;
}

export interface JitterBufferStats {
	/** Packets accepted (duplicates, too-old and stray packets excluded). */
	packets: number;
	/** Packets never repaired (given up, or evicted by the bound). */
	lost: number;
	/** NACKed packets that arrived. */
	repaired: number;
	/** Sequence numbers NACKed, retries included. */
	nacksSent: number;
	framesDelivered: number;
	/** Frames skipped: incomplete when given up, headless, broken, or not keyframes before the first keyframe. */
	framesDropped: number;
	/** No keyframe delivered yet since the start (or a reset), or loss since the last one. */
	waitingForKeyframe: boolean;
	duplicates: number;
	/** Packets older than what was already delivered or given up. */
	tooOld: number;
	/** New streams detected (sequence jump or SSRC change), each a reset. */
	restarts: number;
	/** Packets held right now (never more than maxPackets). */
	held: number;
	/** Missing sequence numbers still tracked for NACKs right now. */
	nackPending: number;
}

interface Slot {
	/** Extended sequence number held here, -1 when the slot is free. */
	ext: number;
	present: boolean;
	payload: Buffer;
	timestamp: number;
	marker: boolean;
	/** The depacketizer says this payload starts a frame. */
	start: boolean;
	/** The depacketizer says the frame starting here is a keyframe (start payloads only). */
	key: boolean;
	receivedAt: number;
	// For missing sequence numbers:
	missingSince: number;
	nackCount: number;
	nextNackAt: number;
}

const EMPTY = Buffer.alloc(0);
/** Extended numbers start here so that stepping back from the first packet never goes negative. */
const EXT_BASE = 0x10_0000;
/** A packet confirming a new stream must lie this close to the one that announced it. */
const CONFIRM_DISTANCE = 100;

function resolve(o: JitterBufferOptions): Required<JitterBufferOptions> {
	const r = {
		depacketizer: o.depacketizer,
		nackDelayMs: o.nackDelayMs ?? 5,
		nackIntervalMs: o.nackIntervalMs ?? 40,
		maxNackRetries: o.maxNackRetries ?? 5,
		maxWaitMs: o.maxWaitMs ?? 200,
		maxPackets: o.maxPackets ?? 2000,
		maxSeqJump: o.maxSeqJump ?? 1000,
	};
	if (!r.depacketizer) throw new TypeError('JitterBuffer needs a depacketizer (depacketizerFor(codec))');
	for (const key of ['nackDelayMs', 'nackIntervalMs', 'maxNackRetries', 'maxWaitMs'] as const) {
		if (!Number.isFinite(r[key]) || r[key] < 0) throw new TypeError(`JitterBuffer ${key} must be a number >= 0, got ${r[key]}`);
	}
	if (!Number.isInteger(r.maxPackets) || r.maxPackets < 16 || r.maxPackets > 32768) {
		throw new TypeError(`JitterBuffer maxPackets must be an integer in 16..32768, got ${r.maxPackets}`);
	}
	if (!Number.isInteger(r.maxSeqJump) || r.maxSeqJump < 1 || r.maxSeqJump > 32767) {
		throw new TypeError(`JitterBuffer maxSeqJump must be an integer in 1..32767, got ${r.maxSeqJump}`);
	}
	return r;
}

export class JitterBuffer {
	readonly #o: Required<JitterBufferOptions>;
	readonly #dep: Depacketizer;
	readonly #single: boolean;
	readonly #slots: Slot[];
	readonly #cap: number;
	/** Extended numbers of missing packets still to NACK (insertion order is roughly age order). */
	readonly #missing = new Set<number>();
	#ssrc: number | undefined;
	/** Next extended sequence number to consume (deliver or give up); undefined before the first packet. */
	#cursor = 0;
	/** Highest extended sequence number seen; undefined before the first packet. */
	#highest: number | undefined;
	/** The last packet consumed, to tell whether the one at the cursor starts a frame. */
	#prevExt = -1;
	#prevTs = 0;
	#prevMarker = false;
	/** Something was consumed since the start/reset (until then a late earlier packet may still extend the window back). */
	#started = false;
	#gotKeyframe = false;
	#lossPending = false;
	#waitingForKeyframe = true;
	/** A packet announcing a new stream, waiting for a second one to confirm it. */
	#candidate: { packet: RtpPacket; now: number } | undefined;
	#held = 0;
	/** Decoder configuration that came as a frame of its own (H264 SPS/PPS), to prepend to the next frame delivered. */
	#config: Buffer | undefined;
	#stats = { packets: 0, lost: 0, repaired: 0, nacksSent: 0, framesDelivered: 0, framesDropped: 0, duplicates: 0, tooOld: 0, restarts: 0 };

	constructor(o: JitterBufferOptions) {
		this.#o = resolve(o);
		this.#dep = this.#o.depacketizer;
		this.#single = this.#dep.singlePacketFrames === true;
		this.#cap = this.#o.maxPackets;
		this.#slots = Array.from({ length: this.#cap }, () => ({
			ext: -1,
			present: false,
			payload: EMPTY,
			timestamp: 0,
			marker: false,
			start: false,
			key: false,
			receivedAt: 0,
			missingSince: 0,
			nackCount: 0,
			nextNackAt: 0,
		}));
	}

	get stats(): JitterBufferStats {
		return { ...this.#stats, waitingForKeyframe: this.#waitingForKeyframe, held: this.#held, nackPending: this.#missing.size };
	}

	/** Forget everything (e.g. after a restart), wait for a keyframe. Counters in stats are kept. */
	reset(): void {
		for (const s of this.#slots) this.#free(s);
		this.#missing.clear();
		this.#ssrc = undefined;
		this.#cursor = 0;
		this.#highest = undefined;
		this.#prevExt = -1;
		this.#started = false;
		this.#gotKeyframe = false;
		this.#lossPending = false;
		this.#waitingForKeyframe = true;
		this.#candidate = undefined;
		this.#config = undefined;
	}

	/** Adds a packet; duplicates, packets older than what was delivered, and stray packets are ignored. */
	push(p: RtpPacket, now: number): void {
		const highest = this.#highest;
		if (highest === undefined) {
			this.#ssrc = p.ssrc;
			const ext = EXT_BASE + p.sequenceNumber;
			this.#highest = ext;
			this.#cursor = ext;
			this.#store(ext, p, now);
			return;
		}
		const ext = highest + seqDiff(p.sequenceNumber, highest & 0xffff);
		const jump = ext - highest;
		if (p.ssrc !== this.#ssrc || jump > this.#o.maxSeqJump || jump < -this.#o.maxSeqJump) {
			this.#newStreamCandidate(p, now);
			return;
		}
		this.#candidate = undefined;
		if (jump > 0) {
			this.#advanceHighest(ext, now);
			this.#store(ext, p, now);
			return;
		}
		if (ext < this.#cursor) {
			// Before anything was consumed, a late packet may still be the start of the first frame: take it.
			if (this.#started || highest - ext >= this.#cap) {
				this.#stats.tooOld += 1;
				return;
			}
			for (let e = ext + 1; e < this.#cursor; e++) this.#markMissing(e, now);
			this.#cursor = ext;
			this.#store(ext, p, now);
			return;
		}
		const slot = this.#slotAt(ext);
		if (slot?.present) {
			this.#stats.duplicates += 1;
			return;
		}
		if (slot && slot.nackCount > 0) this.#stats.repaired += 1;
		this.#missing.delete(ext);
		this.#store(ext, p, now);
	}

	/** Frames now complete and in order (decode order); frames given up are skipped and the next delivered frame has afterLoss=true. */
	pop(now: number): EncodedFrame[] {
		const out: EncodedFrame[] = [];
		const highest = this.#highest;
		if (highest === undefined) return out;
		const maxWait = this.#o.maxWaitMs;
		while (this.#cursor <= highest) {
			const c = this.#cursor;
			const slot = this.#slotAt(c)!;
			if (!slot.present) {
				if (now - slot.missingSince < maxWait) {
					if (this.#jumpToKeyframe()) continue;
					break;
				}
				// Give the missing run up: up to the next packet we have.
				let e = c;
				while (e <= highest && !this.#slotAt(e)!.present) e++;
				this.#discard(c, e - 1);
				continue;
			}
			if (!this.#isStartAt(c, slot)) {
				// Headless: the start of this frame is lost (or, before anything was consumed, may still arrive late).
				if (!this.#started && now - slot.receivedAt < maxWait) {
					if (this.#jumpToKeyframe()) continue;
					break;
				}
				let e = c;
				while (e + 1 <= highest && this.#slotAt(e + 1)!.present && this.#slotAt(e + 1)!.timestamp === slot.timestamp) e++;
				this.#discard(c, e);
				continue;
			}
			const end = this.#frameEnd(c);
			if (end === undefined) break; // its last packet has not come yet
			if (end < 0) {
				const hole = -end;
				if (now - this.#slotAt(hole)!.missingSince < maxWait) {
					if (this.#jumpToKeyframe()) continue;
					break;
				}
				this.#discard(c, hole - 1);
				continue;
			}
			this.#consumeFrame(c, end, out);
		}
		return out;
	}

	/** Sequence numbers to NACK now (each missing seq at most maxNackRetries times, nackIntervalMs apart). */
	nacks(now: number): number[] {
		const out: number[] = [];
		for (const ext of this.#missing) {
			const slot = this.#slotAt(ext);
			if (!slot || slot.present || slot.nackCount >= this.#o.maxNackRetries || now - slot.missingSince >= this.#o.maxWaitMs) {
				this.#missing.delete(ext);
				continue;
			}
			if (now < slot.nextNackAt) continue;
			out.push(ext & 0xffff);
			slot.nackCount += 1;
			slot.nextNackAt = now + this.#o.nackIntervalMs;
			this.#stats.nacksSent += 1;
		}
		return out;
	}

	#slotAt(ext: number): Slot | undefined {
		const s = this.#slots[ext % this.#cap]!;
		return s.ext === ext ? s : undefined;
	}

	#free(s: Slot): void {
		if (s.present) this.#held -= 1;
		s.ext = -1;
		s.present = false;
		s.payload = EMPTY;
	}

	#store(ext: number, p: RtpPacket, now: number): void {
		const s = this.#slots[ext % this.#cap]!;
		if (s.present) this.#held -= 1;
		s.ext = ext;
		s.present = true;
		this.#held += 1;
		s.payload = p.payload;
		s.timestamp = p.timestamp;
		s.marker = p.marker;
		s.start = this.#dep.isFrameStart(p.payload);
		s.key = s.start && this.#dep.isKeyframe(p.payload);
		s.receivedAt = now;
		this.#stats.packets += 1;
	}

	#markMissing(ext: number, now: number): void {
		const s = this.#slots[ext % this.#cap]!;
		if (s.present) this.#held -= 1;
		s.ext = ext;
		s.present = false;
		s.payload = EMPTY;
		s.missingSince = now;
		s.nackCount = 0;
		s.nextNackAt = now + this.#o.nackDelayMs;
		this.#missing.add(ext);
	}

	/** Moves the highest sequence number to ext: marks the gap missing, and keeps the window within maxPackets. */
	#advanceHighest(ext: number, now: number): void {
		const highest = this.#highest!;
		const minCursor = ext - this.#cap + 1;
		if (this.#cursor < minCursor) {
			if (this.#cursor <= highest) this.#discard(this.#cursor, Math.min(highest, minCursor - 1));
			// Sequence numbers skipped over without ever being held are lost too.
			const neverHeld = minCursor - 1 - Math.max(highest, this.#cursor - 1);
			if (neverHeld > 0) this.#stats.lost += neverHeld;
			this.#cursor = minCursor;
			this.#noteLoss();
		}
		for (let e = Math.max(highest + 1, this.#cursor); e < ext; e++) this.#markMissing(e, now);
		this.#highest = ext;
	}

	#newStreamCandidate(p: RtpPacket, now: number): void {
		const c = this.#candidate;
		if (c && c.packet.ssrc === p.ssrc) {
			const d = seqDiff(p.sequenceNumber, c.packet.sequenceNumber);
			if (d !== 0 && d >= -CONFIRM_DISTANCE && d <= CONFIRM_DISTANCE) {
				this.reset();
				this.#stats.restarts += 1;
				this.push(c.packet, c.now);
				this.push(p, now);
				return;
			}
		}
		this.#candidate = { packet: p, now };
	}

	/** Whether the present packet at ext starts a frame: RTP tells when the packet before is known, else the depacketizer. */
	#isStartAt(ext: number, slot: Slot): boolean {
		if (this.#prevExt === ext - 1) return this.#single || this.#prevMarker || this.#prevTs !== slot.timestamp;
		const prev = this.#slotAt(ext - 1);
		if (prev?.present) return this.#single || prev.marker || prev.timestamp !== slot.timestamp;
		return slot.start;
	}

	/**
	 * End of the frame starting at `start`: its last extended sequence number; minus the first missing one if a
	 * packet is missing before its end; undefined if its end has not arrived yet.
	 */
	#frameEnd(start: number): number | undefined {
		const highest = this.#highest!;
		const ts = this.#slotAt(start)!.timestamp;
		for (let e = start; e <= highest; e++) {
			const s = this.#slotAt(e)!;
			if (!s.present) return -e;
			if (s.timestamp !== ts) return e - 1;
			if (this.#single || s.marker) return e;
		}
		return undefined;
	}

	#consumeFrame(start: number, end: number, out: EncodedFrame[]): void {
		const payloads: Buffer[] = [];
		let receivedAt = Number.NEGATIVE_INFINITY;
		for (let e = start; e <= end; e++) {
			const s = this.#slotAt(e)!;
			payloads.push(s.payload);
			if (s.receivedAt > receivedAt) receivedAt = s.receivedAt;
		}
		const first = this.#slotAt(start)!;
		const last = this.#slotAt(end)!;
		const timestamp = first.timestamp;
		const keyframe = this.#dep.isKeyframeFrame ? this.#dep.isKeyframeFrame(payloads) : first.key;
		this.#prevExt = end;
		this.#prevTs = last.timestamp;
		this.#prevMarker = last.marker;
		for (let e = start; e <= end; e++) this.#free(this.#slotAt(e)!);
		this.#cursor = end + 1;
		this.#started = true;
		if (this.#dep.isConfigOnly?.(payloads)) {
			// Parameter sets sent as a frame of their own: the next frame (the keyframe they announce) carries them.
			this.#config = this.#dep.assemble(payloads);
			return;
		}
		if (!this.#gotKeyframe && !keyframe) {
			this.#stats.framesDropped += 1;
			return;
		}
		let data = this.#dep.assemble(payloads);
		if (!data) {
			this.#stats.framesDropped += 1;
			this.#noteLoss();
			return;
		}
		if (this.#config) {
			data = Buffer.concat([this.#config, data]);
			this.#config = undefined;
		}
		out.push({ data, timestamp, keyframe, receivedAt, firstSeq: start & 0xffff, lastSeq: end & 0xffff, afterLoss: this.#lossPending });
		this.#stats.framesDelivered += 1;
		this.#lossPending = false;
		if (keyframe) {
			this.#gotKeyframe = true;
			this.#waitingForKeyframe = false;
		}
	}

	/** Gives up [from, to]: missing packets count as lost, frames among the present ones as dropped. */
	#discard(from: number, to: number): void {
		let frames = 0;
		// A frame already counted (the part of it before a hole) is not counted again.
		let lastTs = this.#prevExt >= 0 ? this.#prevTs : undefined;
		for (let e = from; e <= to; e++) {
			const s = this.#slotAt(e);
			if (!s || !s.present) {
				this.#stats.lost += 1;
				this.#missing.delete(e);
			} else {
				if (lastTs === undefined || s.timestamp !== lastTs || this.#single) frames += 1;
				lastTs = s.timestamp;
				this.#prevExt = e;
				this.#prevTs = s.timestamp;
				this.#prevMarker = s.marker;
			}
			if (s) this.#free(s);
		}
		this.#stats.framesDropped += frames;
		if (this.#cursor <= to) this.#cursor = to + 1;
		this.#started = true;
		this.#noteLoss();
	}

	#noteLoss(): void {
		// Before the first keyframe nothing is decoded, so nothing is broken.
		if (!this.#gotKeyframe) return;
		this.#lossPending = true;
		this.#waitingForKeyframe = true;
	}

	/**
	 * While the cursor waits for missing packets: if a complete keyframe is already here further on, waiting is
	 * pointless (everything before it can be dropped without harm), so jump to it. Audio is not skipped this way:
	 * its packets are all "keyframes" and are worth their NACK.
	 */
	#jumpToKeyframe(): boolean {
		if (this.#single && this.#gotKeyframe) return false;
		const highest = this.#highest!;
		const byFrame = this.#dep.isKeyframeFrame !== undefined;
		for (let e = this.#cursor + 1; e <= highest; e++) {
			const s = this.#slotAt(e)!;
			if (!s.present || !(byFrame || s.key) || !this.#isStartAt(e, s)) continue;
			const end = this.#frameEnd(e);
			if (end === undefined || end < 0) continue;
			if (byFrame) {
				const payloads: Buffer[] = [];
				for (let i = e; i <= end; i++) payloads.push(this.#slotAt(i)!.payload);
				if (!this.#dep.isKeyframeFrame!(payloads)) continue;
			}
			this.#discard(this.#cursor, e - 1);
			return true;
		}
		return false;
	}
}
