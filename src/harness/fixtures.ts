import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtureClipArgs, opusFixtureArgs } from '../ffmpeg/args.js';
import { resolveFfmpeg } from '../ffmpeg/binary.js';

export const FIXTURE_DIR = fileURLToPath(new URL('../../fixtures/generated/', import.meta.url));

export interface ClipSpec {
	/** Default VP8. */
	codec?: 'VP8' | 'H264';
	width: number;
	height: number;
	fps: number;
	seconds: number;
	bitrateKbps: number;
}

/** Barcode rows at the top of every frame: 16 blocks, white where bit b of the frame number is set. */
export const BARCODE_BITS = 16;

/**
 * The broadcaster's fixture clip, in two encodings of the same frames:
 * "normal" (one keyframe at the start, as a long-GOP WebRTC encoder) and
 * "intra" (every frame a keyframe), so the synthetic broadcaster can answer
 * a keyframe request with a real keyframe of the current frame. Every frame
 * carries its number as a barcode, read back by the latency probe. Generated
 * by FFmpeg on first use (a few hundred KiB) into fixtures/generated/.
 */
export function ensureClip(spec: ClipSpec, ffmpegPath?: string): { codec: 'VP8' | 'H264'; normal: string; intra: string } {
	const codec = spec.codec ?? 'VP8';
	const name = `${codec.toLowerCase()}-${spec.width}x${spec.height}-${spec.fps}fps-${spec.seconds}s-${spec.bitrateKbps}k-v2`;
	const extension = codec === 'VP8' ? 'ivf' : 'h264';
	const normal = join(FIXTURE_DIR, `${name}-normal.${extension}`);
	const intra = join(FIXTURE_DIR, `${name}-intra.${extension}`);
	if (existsSync(normal) && existsSync(intra)) return { codec, normal, intra };
	mkdirSync(FIXTURE_DIR, { recursive: true });
	const ffmpeg = resolveFfmpeg(ffmpegPath).path;
	const frames = spec.fps * spec.seconds;
	const encode = (out: string, gop: number): void => {
		const partial = `${out}.partial`;
		const args = fixtureClipArgs({ codec, width: spec.width, height: spec.height, fps: spec.fps, frames, bitrateKbps: spec.bitrateKbps, gop, barcodeBits: BARCODE_BITS, output: partial });
		const result = spawnSync(ffmpeg, args, { encoding: 'utf8' });
		if (result.status !== 0) throw new Error(`could not generate fixture ${out}: ${result.stderr}`);
		renameSync(partial, out);
	};
	encode(normal, frames + 1);
	encode(intra, 1);
	return { codec, normal, intra };
}

/** An Opus clip (a 440 Hz tone, 20 ms packets) for the synthetic broadcaster's audio. */
export function ensureOpusClip(seconds: number, ffmpegPath?: string): string {
	const file = join(FIXTURE_DIR, `opus-${seconds}s.ogg`);
	if (existsSync(file)) return file;
	mkdirSync(FIXTURE_DIR, { recursive: true });
	const partial = `${file}.partial`;
	const result = spawnSync(resolveFfmpeg(ffmpegPath).path, opusFixtureArgs({ seconds, output: partial }), { encoding: 'utf8' });
	if (result.status !== 0) throw new Error(`could not generate fixture ${file}: ${result.stderr}`);
	renameSync(partial, file);
	return file;
}
