import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { barcodeReaderArgs } from '../../src/ffmpeg/args.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sources(dir: string): string[] {
	return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('every FFmpeg argument comes from src/ffmpeg/args.ts', () => {
	it('no file outside src/ffmpeg/ writes FFmpeg options inline', () => {
		const inline = sources(SRC)
			.filter((file) => !file.startsWith(join(SRC, 'ffmpeg')))
			.filter((file) => /'-(hide_banner|loglevel|protocol_whitelist|fflags)'/.test(readFileSync(file, 'utf8')))
			.map((file) => file.slice(SRC.length));
		expect(inline).toEqual([]);
	});

	it("the latency probe's barcode reader: SDP on stdin, one grey pixel per barcode bit per frame on stdout", () => {
		const args = barcodeReaderArgs({ barcodeBits: 24 });
		expect(args.join(' ')).toContain('-f sdp -i pipe:0');
		expect(args.join(' ')).toContain('crop=iw:ih/6:0:0,scale=24:1:flags=area,format=gray');
		expect(args.slice(-3)).toEqual(['-f', 'rawvideo', 'pipe:1']);
	});
});
