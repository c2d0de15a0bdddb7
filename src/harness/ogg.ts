import { readFileSync } from 'node:fs';

/**
 * The Opus packets of an Ogg Opus file, in order, without the OpusHead and
 * OpusTags header packets. Each is one RTP payload (RFC 7587).
 */
export function readOggOpusPackets(file: string): Buffer[] {
	const data = readFileSync(file);
	const packets: Buffer[] = [];
	let partial: Buffer[] = [];
	let offset = 0;
	while (offset + 27 <= data.length) {
		if (data.toString('latin1', offset, offset + 4) !== 'OggS') throw new Error(`${file}: not an Ogg page at byte ${offset}`);
		const segments = data[offset + 26]!;
		const table = data.subarray(offset + 27, offset + 27 + segments);
		let body = offset + 27 + segments;
		for (const lacing of table) {
			partial.push(data.subarray(body, body + lacing));
			body += lacing;
			// A lacing value under 255 ends a packet.
			if (lacing < 255) {
				packets.push(Buffer.concat(partial));
				partial = [];
			}
		}
		offset = body;
	}
	return packets.filter((p) => !p.subarray(0, 8).equals(Buffer.from('OpusHead')) && !p.subarray(0, 8).equals(Buffer.from('OpusTags')));
}
