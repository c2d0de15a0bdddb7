import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
	const barcode = `geq=lum='if(lt(Y,H/6),255*bitand(floor(N/pow(2,floor(X*${BARCODE_BITS}/W))),1),lum(X,Y))':cb='cb(X,Y)':cr='cr(X,Y)'`;
	const encode = (out: string, gop: number): void => {
		const partial = `${out}.partial`;
		const result = spawnSync(
			ffmpeg,
			[
				'-hide_banner', '-loglevel', 'error', '-y',
				'-f', 'lavfi', '-i', `testsrc2=size=${spec.width}x${spec.height}:rate=${spec.fps}`,
				'-vf', barcode,
				'-frames:v', String(frames),
				...(codec === 'VP8'
					? // Error-resilient: no entropy state carried between frames, so a spliced-in keyframe
						// leaves the following frames decodable (otherwise the decoder reads them as garbage).
						['-c:v', 'libvpx', '-deadline', 'good', '-cpu-used', '4', '-lag-in-frames', '0', '-auto-alt-ref', '0', '-error-resilient', '1']
					: ['-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'baseline', '-bf', '0', '-sc_threshold', '0',
						'-x264-params', 'aud=1:repeat-headers=1', '-pix_fmt', 'yuv420p']),
				'-b:v', `${spec.bitrateKbps}k`, '-g', String(gop), '-keyint_min', String(gop),
				'-f', codec === 'VP8' ? 'ivf' : 'h264', partial,
			],
			{ encoding: 'utf8' },
		);
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
	const result = spawnSync(
		resolveFfmpeg(ffmpegPath).path,
		['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
			'-c:a', 'libopus', '-b:a', '48k', '-frame_duration', '20', '-application', 'lowdelay', '-f', 'ogg', partial],
		{ encoding: 'utf8' },
	);
	if (result.status !== 0) throw new Error(`could not generate fixture ${file}: ${result.stderr}`);
	renameSync(partial, file);
	return file;
}
