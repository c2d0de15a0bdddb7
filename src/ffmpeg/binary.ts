import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { FfmpegNotFoundError } from '../errors.js';

const FIX =
	'install FFmpeg (Debian: apt-get install ffmpeg), or set ffmpegPath / BROADCAST_RELAY_FFMPEG to an ffmpeg binary';

export interface ResolvedFfmpeg {
	/** Absolute path (or PATH name) of the binary that will be spawned. */
	path: string;
	/** Where it came from, for the startup log. */
	source: 'option' | 'env' | 'ffmpeg-static' | 'PATH';
	/** First line of `ffmpeg -version`. */
	version: string;
	/** Encoders this build has, of those the relay uses. */
	encoders: { libvpx: boolean; libx264: boolean; libopus: boolean };
}

const cache = new Map<string, ResolvedFfmpeg>();

function isExecutable(file: string): boolean {
	try {
		accessSync(file, constants.X_OK);
		return true;
	} catch {
		return false;
	}
}

function ffmpegStaticPath(): string | undefined {
	try {
		// Optional dependency: present only where its install-time download worked.
		const found = createRequire(import.meta.url)('ffmpeg-static') as unknown;
		return typeof found === 'string' && isExecutable(found) ? found : undefined;
	} catch {
		return undefined;
	}
}

function onPath(name: string): string | undefined {
	for (const dir of (process.env.PATH ?? '').split(delimiter)) {
		if (dir && isExecutable(join(dir, name))) return join(dir, name);
	}
	return undefined;
}

/**
 * Finds the FFmpeg binary, in this order: the explicit setting, the
 * BROADCAST_RELAY_FFMPEG environment variable, ffmpeg-static's binary if its
 * download worked, `ffmpeg` on PATH. Runs it once to check it starts and has the
 * encoders the relay needs. This is the only place that decides which FFmpeg runs.
 */
export function resolveFfmpeg(explicitPath?: string): ResolvedFfmpeg {
	const key = explicitPath ?? '';
	const cached = cache.get(key);
	if (cached) return cached;

	let candidate: { path: string; source: ResolvedFfmpeg['source'] } | undefined;
	if (explicitPath) candidate = { path: explicitPath, source: 'option' };
	else if (process.env.BROADCAST_RELAY_FFMPEG) candidate = { path: process.env.BROADCAST_RELAY_FFMPEG, source: 'env' };
	else {
		const fromStatic = ffmpegStaticPath();
		if (fromStatic) candidate = { path: fromStatic, source: 'ffmpeg-static' };
		else {
			const fromPath = onPath('ffmpeg');
			if (fromPath) candidate = { path: fromPath, source: 'PATH' };
		}
	}
	if (!candidate) throw new FfmpegNotFoundError(`no ffmpeg binary found (not set, no ffmpeg-static, none on PATH): ${FIX}`);

	const probe = spawnSync(candidate.path, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 10_000 });
	if (probe.error || probe.status !== 0) {
		throw new FfmpegNotFoundError(
			`ffmpeg at "${candidate.path}" (from ${candidate.source}) does not run: ${probe.error?.message ?? `exit ${probe.status}`}; ${FIX}`,
			{ cause: probe.error },
		);
	}
	const encoders = spawnSync(candidate.path, ['-hide_banner', '-encoders'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
	const resolved: ResolvedFfmpeg = {
		...candidate,
		version: probe.stdout.split('\n')[0] ?? 'unknown',
		encoders: {
			libvpx: /\blibvpx\b/.test(encoders),
			libx264: /\blibx264\b/.test(encoders),
			libopus: /\blibopus\b/.test(encoders),
		},
	};
	cache.set(key, resolved);
	return resolved;
}
