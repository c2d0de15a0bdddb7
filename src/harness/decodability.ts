/**
 * Which received video frames a decoder fed in arrival order could decode: a frame whose
 * packets all arrived (its first one, no sequence gap up to its marker) and that follows an
 * unbroken chain of such frames from a keyframe. A gap (a lost or reordered packet) breaks
 * the chain until the next whole keyframe. Strict on purpose: a viewer's jitter buffer would
 * wait for a reordered packet, a NACK might repair a loss; this counts what arrived whole.
 */
export class DecodabilityTracker {
	#lastSequence?: number;
	#frame?: { timestamp: number; intact: boolean; keyframe: boolean };
	#chainIntact = false;

	/**
	 * Feeds one RTP packet of the video; true when it completes a decodable frame.
	 * `frameStart`: the packet starts a frame (VP8: S bit of partition 0); `keyframeStart`: it starts a keyframe.
	 */
	push(packet: { sequence: number; timestamp: number; marker: boolean; frameStart: boolean; keyframeStart: boolean }): boolean {
		const { sequence, timestamp, marker, frameStart, keyframeStart } = packet;
		const gap = this.#lastSequence !== undefined && sequence !== ((this.#lastSequence + 1) & 0xffff);
		this.#lastSequence = sequence;
		if (!this.#frame || this.#frame.timestamp !== timestamp) {
			// A gap before a frame's first packet is the end of an earlier frame lost (its marker too):
			// this frame breaks the chain, unless it is a keyframe, which starts a new one.
			this.#frame = { timestamp, intact: frameStart && (!gap || keyframeStart), keyframe: keyframeStart };
		} else if (gap) this.#frame.intact = false;
		if (!marker) return false;
		if (this.#frame.intact && (this.#frame.keyframe || this.#chainIntact)) {
			this.#chainIntact = true;
			return true;
		}
		this.#chainIntact = false;
		return false;
	}
}
