import type { SyntheticBroadcaster } from './SyntheticBroadcaster.js';
import type { WeriftViewer } from './WeriftViewer.js';

export interface ClickDetectorOptions {
	/** A packet this large or larger may start a click, bytes. Default 60. */
	loudBytes?: number;
	/** A packet this small or smaller is silence, bytes. Default 20. */
	quietBytes?: number;
	/** Silent packets that must come before a click's first packet. Default 3. */
	quietPackets?: number;
}

/**
 * Finds clicks in VBR Opus by packet size alone, without decoding: silence encodes to a few
 * bytes a packet (3 in the click clip), a click to a couple of hundred, and the encoder stays
 * loud for a few hundred ms after it. A click starts at a loud packet after `quietPackets`
 * silent ones. Works on the relay's passed-through audio (the broadcaster's own packets) and
 * on re-encoded VBR Opus alike; not on constant-bitrate Opus.
 */
export class ClickDetector {
	readonly #loud: number;
	readonly #quiet: number;
	readonly #quietNeeded: number;
	#quietRun = 0;

	constructor(options: ClickDetectorOptions = {}) {
		const { loudBytes = 60, quietBytes = 20, quietPackets = 3 } = options;
		if (!(loudBytes > quietBytes)) throw new TypeError(`loudBytes (${loudBytes}) must be more than quietBytes (${quietBytes})`);
		this.#loud = loudBytes;
		this.#quiet = quietBytes;
		this.#quietNeeded = quietPackets;
	}

	/** Feeds the next packet's size; true when this packet starts a click. */
	push(size: number): boolean {
		const onset = size >= this.#loud && this.#quietRun >= this.#quietNeeded;
		this.#quietRun = size <= this.#quiet ? this.#quietRun + 1 : 0;
		return onset;
	}
}

/**
 * Indices of the packets that start a click. `looped`: the packets play in a loop (the
 * broadcaster's clip), so the silence at the end comes before the click at index 0.
 */
export function clickOnsets(sizes: readonly number[], options: ClickDetectorOptions & { looped?: boolean } = {}): number[] {
	const detector = new ClickDetector(options);
	if (options.looped) for (const size of sizes.slice(-(options.quietPackets ?? 3))) detector.push(size);
	const onsets: number[] = [];
	sizes.forEach((size, index) => {
		if (detector.push(size)) onsets.push(index);
	});
	return onsets;
}

export interface AvOffsetProbeOptions {
	/** Sends the click clip (ensureClickClip) with the barcode clip, on one timeline. */
	broadcaster: SyntheticBroadcaster;
	/** Receives the audio (WeriftViewer with audio on): where the clicks are heard. */
	viewer: WeriftViewer;
	/**
	 * When each broadcaster frame (clip frame number, from its barcode) arrived: the same werift
	 * viewer's barcodeArrivals (readBarcodes: RTP arrival, no decoder delay), or a LatencyProbe
	 * (after FFmpeg's decoding: its delay counts against video).
	 */
	frames: { readonly arrivals: ReadonlyArray<{ index: number; at: number }> };
	/** The clip has a click at barcode frame k × clickEveryFrames (as made by ensureClickClip). */
	clickEveryFrames: number;
	/** Longest audio delay through the relay considered, ms; beyond it a click cannot be told from the next. Default 900. */
	maxAudioDelayMs?: number;
}

/**
 * Measures A/V offset at a viewer: for each click the viewer hears, when it arrived against
 * when the video frame it belongs to (the barcode frame at the same media time) arrived, less
 * the offset the broadcaster itself sent them with (its timers' jitter; both come from one
 * clock). Positive: audio arrives after its video.
 *
 * Each click is identified as the last click packet the broadcaster sent before it was heard,
 * so the audio must reach the viewer within `maxAudioDelayMs` (under the click period).
 * Precision: one Opus packet holds 20 ms, and the click sits 2.5 ms into its packet (the
 * encoder's pre-skip).
 */
export class AvOffsetProbe {
	readonly #options: AvOffsetProbeOptions;
	/** Packet index in the audio loop → click ordinal k (the click at barcode frame k × clickEveryFrames). */
	readonly #clicks = new Map<number, number>();
	readonly #loopPackets: number;

	constructor(options: AvOffsetProbeOptions) {
		this.#options = options;
		const { broadcaster, clickEveryFrames } = options;
		const packets = broadcaster.audioClipPackets;
		this.#loopPackets = packets.length;
		const onsets = clickOnsets(
			packets.map((p) => p.length),
			{ looped: true },
		);
		const expected = broadcaster.clipFrames / clickEveryFrames;
		if (onsets.length !== expected) {
			throw new TypeError(
				`the broadcaster's audio has ${onsets.length} clicks per loop where its ${broadcaster.clipFrames}-frame video needs ${expected} (one every ${clickEveryFrames} frames): send the click clip (ensureClickClip) with a video clip of the same length`,
			);
		}
		onsets.forEach((index, k) => this.#clicks.set(index, k));
	}

	/** A/V offsets (ms) of the clicks heard at or after `from` (performance.now()). */
	offsets(from = 0): number[] {
		const { broadcaster, viewer, frames, clickEveryFrames, maxAudioDelayMs = 900 } = this.#options;
		const seen = new Map<number, number[]>();
		for (const { index, at } of frames.arrivals) {
			const list = seen.get(index) ?? [];
			list.push(at);
			seen.set(index, list);
		}
		const detector = new ClickDetector();
		const offsets: number[] = [];
		for (const { at, size } of viewer.audioArrivals) {
			if (!detector.push(size) || at < from) continue;
			const packet = this.#lastClickSentBefore(at);
			if (packet === undefined) continue;
			const clickSent = broadcaster.audioPacketSentAt(packet);
			if (at - clickSent > maxAudioDelayMs) continue;
			const loop = Math.floor(packet / this.#loopPackets);
			const frame = loop * broadcaster.clipFrames + this.#clicks.get(packet % this.#loopPackets)! * clickEveryFrames;
			const frameSent = broadcaster.videoFrameSentAt(frame);
			if (!Number.isFinite(frameSent)) continue;
			const frameSeen = seen.get(frame % broadcaster.clipFrames)?.find((t) => t >= frameSent && t < frameSent + 2000);
			if (frameSeen === undefined) continue;
			offsets.push(at - frameSeen - (clickSent - frameSent));
		}
		return offsets;
	}

	/** The stream sequence of the last click packet sent at or before `at`. */
	#lastClickSentBefore(at: number): number | undefined {
		const { broadcaster } = this.#options;
		// Binary search: the last packet sent at or before `at`.
		let low = 0;
		let high = broadcaster.audioPacketsSent - 1;
		if (high < 0 || broadcaster.audioPacketSentAt(0) > at) return undefined;
		while (low < high) {
			const middle = Math.ceil((low + high) / 2);
			if (broadcaster.audioPacketSentAt(middle) <= at) low = middle;
			else high = middle - 1;
		}
		for (let packet = low; packet >= 0 && packet > low - this.#loopPackets; packet--) {
			if (this.#clicks.has(packet % this.#loopPackets)) return packet;
		}
		return undefined;
	}
}
