import { readFileSync } from 'node:fs';

/** NAL unit type of an H264 NAL unit. */
export const nalType = (nal: Buffer): number => nal[0]! & 0x1f;

/** Splits an Annex B byte stream into NAL units (start codes removed). */
export function splitAnnexB(data: Buffer): Buffer[] {
	const nals: Buffer[] = [];
	let start = -1;
	let i = 0;
	while (i + 3 <= data.length) {
		const three = data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1;
		const four = i + 4 <= data.length && data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 0 && data[i + 3] === 1;
		if (three || four) {
			if (start >= 0) nals.push(data.subarray(start, i));
			i += three ? 3 : 4;
			start = i;
		} else i += 1;
	}
	if (start >= 0 && start < data.length) nals.push(data.subarray(start));
	return nals.filter((n) => n.length > 0);
}

/**
 * The access units (frames) of an Annex B H264 file written with access unit
 * delimiters (x264 aud=1): each a list of NAL units, delimiters dropped.
 */
export function readH264AccessUnits(file: string): Buffer[][] {
	const units: Buffer[][] = [];
	let current: Buffer[] = [];
	for (const nal of splitAnnexB(readFileSync(file))) {
		if (nalType(nal) === 9) {
			if (current.length) units.push(current);
			current = [];
		} else current.push(nal);
	}
	if (current.length) units.push(current);
	return units;
}

export const isIdr = (unit: Buffer[]): boolean => unit.some((nal) => nalType(nal) === 5);

/**
 * RTP payloads of one access unit (RFC 6184, packetization-mode 1): a NAL unit
 * that fits goes alone, a larger one is split into FU-A fragments.
 */
export function packetizeH264(unit: Buffer[], maxPayload: number): Buffer[] {
	const payloads: Buffer[] = [];
	for (const nal of unit) {
		if (nal.length <= maxPayload) {
			payloads.push(nal);
			continue;
		}
		const indicator = (nal[0]! & 0xe0) | 28;
		const type = nal[0]! & 0x1f;
		const body = nal.subarray(1);
		for (let offset = 0; offset < body.length; offset += maxPayload - 2) {
			const first = offset === 0;
			const last = offset + maxPayload - 2 >= body.length;
			const header = (first ? 0x80 : 0) | (last ? 0x40 : 0) | type;
			payloads.push(Buffer.concat([Buffer.from([indicator, header]), body.subarray(offset, offset + maxPayload - 2)]));
		}
	}
	return payloads;
}
