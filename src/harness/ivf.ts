import { readFileSync } from 'node:fs';

/** The frames of an IVF file (the container FFmpeg writes raw VP8 into). */
export interface IvfClip {
	width: number;
	height: number;
	frames: Buffer[];
}

export function readIvf(file: string): IvfClip {
	const data = readFileSync(file);
	if (data.toString('latin1', 0, 4) !== 'DKIF') throw new Error(`${file} is not an IVF file`);
	const headerSize = data.readUInt16LE(6);
	const width = data.readUInt16LE(12);
	const height = data.readUInt16LE(14);
	const frames: Buffer[] = [];
	let offset = headerSize;
	while (offset + 12 <= data.length) {
		const size = data.readUInt32LE(offset);
		frames.push(data.subarray(offset + 12, offset + 12 + size));
		offset += 12 + size;
	}
	return { width, height, frames };
}

/** VP8 keyframe bit: the first payload byte's lowest bit is 0 on keyframes. */
export function isVp8Keyframe(frame: Buffer): boolean {
	return frame.length > 0 && (frame[0]! & 0x01) === 0;
}
