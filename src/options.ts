import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { InvalidOptionError } from './errors.js';
import type { Logger } from './logger.js';

const port = z.number().int().min(1024).max(65535);
const ipAddress = z.string().refine((value) => isIP(value) !== 0, 'must be an IPv4 or IPv6 address, e.g. 127.0.0.1 or 0.0.0.0');

/** One rung of the simulcast ladder: a size, bitrate and frame rate the re-encoder makes from the one decoded picture. */
const renditionSchema = z.strictObject({
	width: z.number().int().min(16).max(7680).refine((v) => v % 2 === 0, 'must be even'),
	height: z.number().int().min(16).max(4320).refine((v) => v % 2 === 0, 'must be even'),
	bitrateKbps: z.number().int().min(30).max(50_000),
	/** Default: the broadcast's video fps. At most it. */
	fps: z.number().int().min(1).max(120).optional(),
});

// Strict objects: a misspelled option is an error, not silently ignored.
const videoEncodingSchema = z.strictObject({
	/** Output codec of the re-encoder. Default "VP8". */
	codec: z.enum(['VP8', 'H264']).default('VP8'),
	/** Output width in pixels. Default 1280. */
	width: z.number().int().min(16).max(7680).default(1280),
	/** Output height in pixels. Default 720. */
	height: z.number().int().min(16).max(4320).default(720),
	/** Output frame rate. Default 30. */
	fps: z.number().int().min(1).max(120).default(30),
	/** Output bitrate in kbit/s. Default 1500. */
	bitrateKbps: z.number().int().min(50).max(50_000).default(1500),
	/** Seconds between the re-encoder's keyframes. Default 2. */
	keyframeIntervalSeconds: z.number().min(0.1).max(60).default(2),
	/** Encoder threads. Default 2. */
	threads: z.number().int().min(1).max(64).default(2),
	/**
	 * libav engine: shortest time between two keyframes made on demand (a viewer's PLI/FIR,
	 * a new viewer), ms. Requests inside it are coalesced into the next allowed keyframe.
	 * Lower: joining viewers wait less; higher: fewer keyframes (each costs several frames'
	 * bits) when many viewers ask at once. Default 500.
	 */
	minKeyframeIntervalMs: z.number().int().min(0).max(60_000).default(500),
	/**
	 * libav engine: simulcast layers the re-encoder makes from one decode, each its own
	 * encoding of the one re-encoded producer, so mediasoup picks a layer per viewer from
	 * its bandwidth estimate. Derived from width, height and bitrateKbps: the top layer is
	 * them, each lower one half the size at a third (then a tenth...) of the top bitrate,
	 * e.g. 1280x720@1500, 640x360@500, 320x180@150. 1: a single rendition. Default 3
	 * (libav engine; the FFmpeg engine makes one).
	 */
	layers: z.number().int().min(1).max(4).optional(),
	/** libav engine: the ladder itself, any order (sorted lowest bitrate first); overrides `layers`, width, height and bitrateKbps. */
	ladder: z.array(renditionSchema).min(1).max(4).optional(),
	/** Highest layer (0: the lowest) any viewer of this broadcast gets; a ceiling on viewers' own choices. Default: the top. */
	maxLayer: z.number().int().min(0).max(3).optional(),
});

const audioSchema = z.strictObject({
	/** Re-encode Opus through FFmpeg instead of passing it through. Default false. */
	reencode: z.boolean().default(false),
	/** Bitrate of re-encoded Opus, kbit/s. Default 64. */
	bitrateKbps: z.number().int().min(6).max(510).default(64),
});

export const broadcastOptionsSchema = z.strictObject({
	/** Broadcast id (URL-safe). Default: a random UUID. */
	id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1-64 letters, digits, "-" or "_"').optional(),
	/** "relay": viewers get the re-encoded stream; "baseline": the broadcaster's stream piped as is. Default "relay". */
	mode: z.enum(['relay', 'baseline']).default('relay'),
	/**
	 * Re-encoder engine (relay mode). "libav": one engine process per broadcast on node-av
	 * (libavcodec), with keyframes on demand, NACK-repaired input and A/V on one clock;
	 * "ffmpeg": the FFmpeg command line per track, keyframes on its own clock only. Default "libav".
	 */
	engine: z.enum(['libav', 'ffmpeg']).default('libav'),
	video: videoEncodingSchema.prefault({}),
	audio: audioSchema.prefault({}),
});

export const relayOptionsSchema = z
	.strictObject({
		/** mediasoup workers, one CPU core each. Default: one per core. */
		workers: z.number().int().min(1).max(256).default(() => availableParallelism()),
		/** RTC (viewer and broadcaster) UDP/TCP ports of the workers. Default 40000-49999. */
		rtcMinPort: port.default(40000),
		rtcMaxPort: port.default(49999),
		/**
		 * Local UDP ports for FFmpeg's sockets (two pairs per re-encoded track), on loopback.
		 * Keep them out of the kernel's ephemeral range (Linux: 32768-60999), where any
		 * program's unbound socket could take one between the pool's check and FFmpeg's bind.
		 * Default 61000-61999.
		 */
		ffmpegMinPort: port.default(61000),
		ffmpegMaxPort: port.default(61999),
		/** FFmpeg binary; default: BROADCAST_RELAY_FFMPEG, then ffmpeg-static, then ffmpeg on PATH. */
		ffmpegPath: z.string().min(1).optional(),
		/** IP the viewer and broadcaster transports listen on. Default "127.0.0.1". */
		listenIp: ipAddress.default('127.0.0.1'),
		/** IP announced in ICE candidates when behind NAT. Default: listenIp. */
		announcedIp: ipAddress.optional(),
		/** Consumers a worker may carry (mediasoup's scalability notes: about 500). Default 500. */
		consumersPerWorker: z.number().int().min(1).default(500),
		/** Consumers one viewer router may carry. Default 500. */
		consumersPerRouter: z.number().int().min(1).default(500),
		/** mediasoup worker log level. Default "warn". */
		workerLogLevel: z.enum(['debug', 'warn', 'error', 'none']).default('warn'),
		/** First delay before restarting a dead FFmpeg, doubled per failure up to restartMaxMs. Default 100. */
		restartInitialMs: z.number().int().min(0).default(100),
		/** Longest delay between FFmpeg restarts. Default 5000. */
		restartMaxMs: z.number().int().min(1).default(5000),
		/** A WebRTC peer (publisher or viewer) that has not connected, or stays disconnected, this long is ended, ms. Default 15000. */
		peerTimeoutMs: z.number().int().min(1000).default(15_000),
		/**
		 * A WebRTC publisher that has sent nothing (no media, RTCP or STUN) this long is
		 * replaced by a new publish for its broadcast instead of answering it 409, so a
		 * broadcaster that vanished can reconnect at once; 0: never. Default 3000.
		 */
		silentPublisherMs: z.number().int().min(0).default(3000),
		/**
		 * Refuse a new re-encoded broadcast (CapacityExceededError; WHIP 503 with Retry-After)
		 * when the machine's idle CPU over the last 5 s is below what its re-encoder is
		 * expected to need (about 0.3 core at 720p30 with the libav engine, scaled by pixel
		 * rate), so the broadcasts already running keep real time. Default true.
		 */
		cpuAdmission: z.boolean().default(true),
		/** Starting send estimate of viewer transports, bit/s. Default 2000000. */
		initialAvailableOutgoingBitrate: z.number().int().min(100_000).default(2_000_000),
		/** Defaults for broadcasts created without their own. */
		broadcastDefaults: broadcastOptionsSchema.omit({ id: true }).prefault({}),
	})
	// Candidates would carry 0.0.0.0 / ::, which no peer can reach.
	.refine((o) => o.announcedIp !== undefined || (o.listenIp !== '0.0.0.0' && o.listenIp !== '::'), {
		message: 'listening on every interface needs announcedIp (BROADCAST_RELAY_ANNOUNCED_IP, --announced-ip): the address peers reach this host at',
		path: ['announcedIp'],
	})
	.refine((o) => o.rtcMinPort < o.rtcMaxPort, { message: 'rtcMinPort must be below rtcMaxPort', path: ['rtcMinPort'] })
	.refine((o) => o.ffmpegMinPort < o.ffmpegMaxPort, { message: 'ffmpegMinPort must be below ffmpegMaxPort', path: ['ffmpegMinPort'] })
	.refine((o) => o.ffmpegMaxPort < o.rtcMinPort || o.ffmpegMinPort > o.rtcMaxPort, {
		message: 'the FFmpeg port range must not overlap the RTC port range',
		path: ['ffmpegMinPort'],
	});

export type RelayOptionsInput = z.input<typeof relayOptionsSchema> & { logger?: Logger };
export type RelayOptions = z.output<typeof relayOptionsSchema>;
export type BroadcastOptionsInput = z.input<typeof broadcastOptionsSchema>;
export type Rendition = Required<z.output<typeof renditionSchema>>;
/** Resolved broadcast options: the video's simulcast ladder made explicit (lowest first, at least one layer). */
export type BroadcastOptions = z.output<typeof broadcastOptionsSchema> & {
	video: z.output<typeof broadcastOptionsSchema>['video'] & { ladder: Rendition[]; maxLayer: number };
};

/** Share of the top bitrate per layer below it (1/3, 1/10, 1/30), as common ABR ladders step. */
const LOWER_LAYER_BITRATE_SHARE = [1, 1 / 3, 1 / 10, 1 / 30];

/**
 * The simulcast ladder of a broadcast's video, lowest first. An explicit `ladder`
 * wins; else `layers` rungs from the top (width x height @ bitrateKbps), each
 * half the size of the one above. The FFmpeg engine encodes one rendition only.
 */
export function resolveLadder(video: z.output<typeof videoEncodingSchema>, engine: 'libav' | 'ffmpeg'): Rendition[] {
	const explicit = video.ladder !== undefined || video.layers !== undefined;
	if (engine === 'ffmpeg') {
		if (explicit && (video.ladder?.length ?? video.layers ?? 1) > 1) {
			throw new InvalidOptionError('a simulcast ladder (video.layers or video.ladder above 1) needs engine "libav"; the FFmpeg engine encodes one rendition');
		}
		const top = video.ladder?.[0];
		return [top ? { ...top, fps: Math.min(top.fps ?? video.fps, video.fps) } : { width: video.width, height: video.height, bitrateKbps: video.bitrateKbps, fps: video.fps }];
	}
	if (video.ladder) {
		const rungs = video.ladder.map((r) => ({ ...r, fps: r.fps ?? video.fps })).sort((a, b) => a.bitrateKbps - b.bitrateKbps || a.width * a.height - b.width * b.height);
		const faster = rungs.find((r) => r.fps > video.fps);
		if (faster) throw new InvalidOptionError(`video.ladder: a layer's fps (${faster.fps}) cannot exceed video.fps (${video.fps}): the engine encodes at most every input picture`);
		return rungs;
	}
	const count = video.layers ?? 3;
	const rungs: Rendition[] = [];
	for (let i = 0; i < count; i++) {
		const scale = 2 ** i;
		const width = Math.floor(video.width / scale / 2) * 2;
		const height = Math.floor(video.height / scale / 2) * 2;
		// Below about 128x72 a layer helps nobody: stop the ladder there.
		if (i > 0 && (width < 128 || height < 72)) break;
		rungs.push({ width, height, bitrateKbps: Math.max(30, Math.round(video.bitrateKbps * LOWER_LAYER_BITRATE_SHARE[i]!)), fps: video.fps });
	}
	return rungs.reverse();
}

/** One line naming each bad field of a failed zod parse: "path: message; path: message". */
export function formatIssues(error: z.ZodError, root = 'options'): string {
	return error.issues.map((issue) => `${issue.path.join('.') || root}: ${issue.message}`).join('; ');
}

/** Resolves every default and validates, once. Throws InvalidOptionError naming each bad option. */
export function resolveRelayOptions(input: Omit<RelayOptionsInput, 'logger'> = {}): RelayOptions {
	const parsed = relayOptionsSchema.safeParse(input);
	if (!parsed.success) throw new InvalidOptionError(`invalid relay options: ${formatIssues(parsed.error)}`);
	return parsed.data;
}

export function resolveBroadcastOptions(input: BroadcastOptionsInput, defaults: RelayOptions['broadcastDefaults']): BroadcastOptions {
	const merged = {
		...defaults,
		...input,
		video: { ...defaults.video, ...(input.video ?? {}) },
		audio: { ...defaults.audio, ...(input.audio ?? {}) },
	};
	const parsed = broadcastOptionsSchema.safeParse(merged);
	if (!parsed.success) throw new InvalidOptionError(`invalid broadcast options: ${formatIssues(parsed.error)}`);
	const options = parsed.data;
	const ladder = resolveLadder(options.video, options.engine);
	const top = ladder.length - 1;
	if (options.video.maxLayer !== undefined && options.video.maxLayer > top) {
		throw new InvalidOptionError(`invalid broadcast options: video.maxLayer ${options.video.maxLayer} is above the top layer (${top}); layers are 0 (lowest) to ${top}`);
	}
	return { ...options, video: { ...options.video, ladder, maxLayer: options.video.maxLayer ?? top } };
}
