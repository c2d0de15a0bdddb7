import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { InvalidOptionError } from '../errors.js';
import { clusterOptionsSchema } from '../cluster/options.js';
import { formatIssues, relayOptionsSchema } from '../options.js';

const tokenList = z.array(z.string().min(8, 'tokens must be at least 8 characters')).default([]);

const loopbackHosts = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

const signedTokensSchema = z
	.strictObject({
		/** HS256 (or HS384/HS512) shared secret, at least 32 characters. Default: none. */
		secret: z.string().min(32, 'the token secret must be at least 32 characters (openssl rand -base64 32)').optional(),
		/** URL of a JWKS (public keys; https, or http on loopback), fetched and cached. Default: none. */
		jwksUrl: z
			.url()
			.refine((value) => {
				const url = new URL(value);
				return url.protocol === 'https:' || (url.protocol === 'http:' && loopbackHosts.test(url.hostname));
			}, 'the JWKS URL must be https (http only on loopback)')
			.optional(),
		/** JSON file holding a JWKS, read at start. Default: none. */
		jwksFile: z.string().min(1).optional(),
		/** The "aud" claim tokens must carry. Default "broadcast-relay". */
		audience: z.string().min(1).default('broadcast-relay'),
		/** The "iss" claim tokens must carry; unset: not checked. Default: unset. */
		issuer: z.string().min(1).optional(),
		/** Leeway for "exp" and "nbf" against clock skew, seconds. Default 30. */
		clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
	})
	.refine((t) => [t.secret, t.jwksUrl, t.jwksFile].filter(Boolean).length <= 1, 'give one of secret, jwksUrl and jwksFile, not several');

const iceUrl = z.string().regex(/^(stun|stuns|turn|turns):[^\s<>",;]+$/, 'ICE server URLs look like turn:host:3478?transport=udp, turns:host:5349 or stun:host:3478');

const turnSchema = z
	.strictObject({
		/** stun:, turn: and turns: URLs given to WHIP/WHEP clients. Default: none (no Link headers). */
		urls: z.array(iceUrl).default([]),
		/** Shared secret of the TURN server (coturn: use-auth-secret, static-auth-secret). Needed for turn(s): URLs. Default: none. */
		secret: z.string().min(16, 'the TURN secret must be at least 16 characters (openssl rand -hex 32)').optional(),
		/** How long TURN credentials are valid, seconds (a session relayed longer may lose its relay at a refresh). Default 86400. */
		ttlSeconds: z.number().int().min(60).max(7 * 86_400).default(86_400),
	})
	.refine((t) => !t.urls.some((url) => /^turns?:/.test(url)) || t.secret !== undefined, 'turn: URLs need turn.secret (the TURN server\'s static-auth-secret)')
	.refine((t) => t.secret === undefined || t.urls.some((url) => /^turns?:/.test(url)), 'turn.secret is set but no turn: URL is; add turn.urls');

const rtmpSchema = z.strictObject({
	/** Take RTMP publishers on `rtmp://<host>:<port>/live/<broadcast>?key=<stream key>` (README, RTMP and SRT ingest). Default false. */
	enabled: z.boolean().default(false),
	/** Address the RTMP server listens on. Default: the HTTP `host`. */
	host: z.string().min(1).optional(),
	/** TCP port; 0 picks a free one. Default 1935. */
	port: z.number().int().min(0).max(65535).default(1935),
});

const srtSchema = z.strictObject({
	/** Take SRT callers (listener mode; the streamid names the broadcast and key). Needs an FFmpeg with libsrt. Default false. */
	enabled: z.boolean().default(false),
	/** Address the SRT listener binds. Default: the HTTP `host`. */
	host: z.string().min(1).optional(),
	/** UDP port. Default 8890. */
	port: z.number().int().min(1).max(65535).default(8890),
	/** Passphrase callers must use (SRT AES encryption); 10-79 characters. Default: none (unencrypted). */
	passphrase: z.string().min(10, 'SRT passphrases are 10 to 79 characters').max(79, 'SRT passphrases are 10 to 79 characters').optional(),
	/** SRT receiver latency (time to retransmit lost packets), ms. Default 200. */
	latencyMs: z.number().int().min(20).max(8000).default(200),
});

const liveIngestSchema = z.strictObject({
	/** An RTMP/SRT publisher that drops and comes back within this long continues the same broadcast (viewers keep their sessions), ms. Default 10000. */
	reconnectGraceMs: z.number().int().min(0).max(300_000).default(10_000),
	/** Opus bitrate the publishers' AAC audio is re-encoded at, kbit/s. Default 96. */
	audioBitrateKbps: z.number().int().min(6).max(510).default(96),
});

/** The service's whole configuration. Each field is documented once, here, with its default. */
export const serviceConfigSchema = z.strictObject({
	/** Address the HTTP server listens on. Default "127.0.0.1". */
	host: z.string().min(1).default('127.0.0.1'),
	/** HTTP port; 0 picks a free one. Default 8080. */
	port: z.number().int().min(0).max(65535).default(8080),
	/** Bearer tokens accepted for WHIP ingest and the ingest API. Empty: ingest is open (log warns). */
	ingestTokens: tokenList,
	/** Bearer tokens accepted for the admin API (create/delete broadcasts, stats). Empty: open. */
	adminTokens: tokenList,
	/** Bearer tokens accepted for /metrics, besides the admin tokens. With neither configured, /metrics is open. */
	metricsTokens: tokenList,
	/** Signed tokens (JWT) accepted beside the static ones, with per-broadcast permissions (README, Signed tokens). Default: none. */
	signedTokens: signedTokensSchema.prefault({}),
	/** "public": anyone may play over WHEP; "token": WHEP needs a signed token with play permission for the broadcast. Default "public". */
	playback: z.enum(['public', 'token']).default('public'),
	/** TURN/STUN servers handed to WHIP/WHEP clients in Link headers, with time-limited TURN credentials (README, TURN). Default: none. */
	turn: turnSchema.prefault({}),
	/** Create a broadcast when a WHIP publisher posts to an unknown id. Default true. */
	autoCreateBroadcasts: z.boolean().default(true),
	/** Most broadcasts this node holds (WHIP auto-creation and POST /api/broadcasts get 503 beyond it). Default 32. */
	maxBroadcasts: z.number().int().min(1).max(10_000).default(32),
	/** Start a demo broadcast (FFmpeg test pattern) with this id; empty string: no demo. Default "" (off). */
	demo: z.string().regex(/^[A-Za-z0-9_-]*$/).default(''),
	/** Largest request body accepted, bytes (SDP offers are a few KiB). Default 65536. */
	bodyLimit: z.number().int().min(1024).default(64 * 1024),
	/** A connection that sends nothing for this long is closed, and a request must arrive whole within it, ms (slow clients cannot hold connections). Default 30000. */
	requestTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
	/** How long graceful shutdown may take before the process exits anyway, ms. Default 10000. */
	shutdownTimeoutMs: z.number().int().min(100).default(10_000),
	/** Seconds a client is told to wait (Retry-After) when there is no capacity. Default 5. */
	retryAfterSeconds: z.number().int().min(1).default(5),
	/** Log level of the service's pino logger. Default "info". */
	logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
	/** Cluster mode: Redis, this node's id and public URL, leases, pull limits (README, Cluster). Default: none (a single host). */
	cluster: clusterOptionsSchema.optional(),
	/** RTMP ingest. Default: off. */
	rtmp: rtmpSchema.prefault({}),
	/** SRT ingest. Default: off. */
	srt: srtSchema.prefault({}),
	/** What RTMP and SRT publishers share: reconnect grace, audio bitrate. */
	liveIngest: liveIngestSchema.prefault({}),
	/** Relay (mediasoup workers, FFmpeg, ports, budgets): see the relay options. */
	relay: relayOptionsSchema.prefault({}),
}).superRefine((config, context) => {
	// The SRT port is UDP on the same machine as mediasoup's and FFmpeg's ranges: one socket each.
	const { srt, relay } = config;
	if (srt.enabled && srt.port >= relay.rtcMinPort && srt.port <= relay.rtcMaxPort) {
		context.addIssue({ code: 'custom', path: ['srt', 'port'], message: `${srt.port} is inside relay.rtcMinPort-rtcMaxPort (${relay.rtcMinPort}-${relay.rtcMaxPort}); pick a port outside it` });
	}
	if (config.rtmp.enabled && config.rtmp.port !== 0 && config.rtmp.port === config.port && (config.rtmp.host ?? config.host) === config.host) {
		context.addIssue({ code: 'custom', path: ['rtmp', 'port'], message: `${config.rtmp.port} is the HTTP port; pick another` });
	}
});

export type ServiceConfigInput = z.input<typeof serviceConfigSchema>;
export type ServiceConfig = z.output<typeof serviceConfigSchema>;

/** Environment variables the service reads, and the config path each sets. */
export const ENVIRONMENT: Record<string, { path: string[]; type: 'string' | 'number' | 'list' | 'boolean' }> = {
	BROADCAST_RELAY_HOST: { path: ['host'], type: 'string' },
	BROADCAST_RELAY_PORT: { path: ['port'], type: 'number' },
	BROADCAST_RELAY_INGEST_TOKENS: { path: ['ingestTokens'], type: 'list' },
	BROADCAST_RELAY_ADMIN_TOKENS: { path: ['adminTokens'], type: 'list' },
	BROADCAST_RELAY_METRICS_TOKENS: { path: ['metricsTokens'], type: 'list' },
	BROADCAST_RELAY_DEMO: { path: ['demo'], type: 'string' },
	BROADCAST_RELAY_TOKEN_SECRET: { path: ['signedTokens', 'secret'], type: 'string' },
	BROADCAST_RELAY_JWKS_URL: { path: ['signedTokens', 'jwksUrl'], type: 'string' },
	BROADCAST_RELAY_JWKS_FILE: { path: ['signedTokens', 'jwksFile'], type: 'string' },
	BROADCAST_RELAY_TOKEN_AUDIENCE: { path: ['signedTokens', 'audience'], type: 'string' },
	BROADCAST_RELAY_TOKEN_ISSUER: { path: ['signedTokens', 'issuer'], type: 'string' },
	BROADCAST_RELAY_PLAYBACK: { path: ['playback'], type: 'string' },
	BROADCAST_RELAY_TURN_URLS: { path: ['turn', 'urls'], type: 'list' },
	BROADCAST_RELAY_TURN_SECRET: { path: ['turn', 'secret'], type: 'string' },
	BROADCAST_RELAY_TURN_TTL: { path: ['turn', 'ttlSeconds'], type: 'number' },
	BROADCAST_RELAY_LOG_LEVEL: { path: ['logLevel'], type: 'string' },
	BROADCAST_RELAY_CLUSTER: { path: ['cluster', 'redisUrl'], type: 'string' },
	BROADCAST_RELAY_NODE_ID: { path: ['cluster', 'nodeId'], type: 'string' },
	BROADCAST_RELAY_PUBLIC_URL: { path: ['cluster', 'publicUrl'], type: 'string' },
	BROADCAST_RELAY_CLUSTER_MAX_EDGE_PULLS: { path: ['cluster', 'maxEdgePulls'], type: 'number' },
	BROADCAST_RELAY_WORKERS: { path: ['relay', 'workers'], type: 'number' },
	BROADCAST_RELAY_LISTEN_IP: { path: ['relay', 'listenIp'], type: 'string' },
	BROADCAST_RELAY_ANNOUNCED_IP: { path: ['relay', 'announcedIp'], type: 'string' },
	BROADCAST_RELAY_RTC_MIN_PORT: { path: ['relay', 'rtcMinPort'], type: 'number' },
	BROADCAST_RELAY_RTC_MAX_PORT: { path: ['relay', 'rtcMaxPort'], type: 'number' },
	BROADCAST_RELAY_FFMPEG: { path: ['relay', 'ffmpegPath'], type: 'string' },
	BROADCAST_RELAY_CONSUMERS_PER_WORKER: { path: ['relay', 'consumersPerWorker'], type: 'number' },
	BROADCAST_RELAY_CPU_ADMISSION: { path: ['relay', 'cpuAdmission'], type: 'boolean' },
	BROADCAST_RELAY_ENGINE: { path: ['relay', 'broadcastDefaults', 'engine'], type: 'string' },
	BROADCAST_RELAY_RTMP: { path: ['rtmp', 'enabled'], type: 'boolean' },
	BROADCAST_RELAY_RTMP_HOST: { path: ['rtmp', 'host'], type: 'string' },
	BROADCAST_RELAY_RTMP_PORT: { path: ['rtmp', 'port'], type: 'number' },
	BROADCAST_RELAY_SRT: { path: ['srt', 'enabled'], type: 'boolean' },
	BROADCAST_RELAY_SRT_HOST: { path: ['srt', 'host'], type: 'string' },
	BROADCAST_RELAY_SRT_PORT: { path: ['srt', 'port'], type: 'number' },
	BROADCAST_RELAY_SRT_PASSPHRASE: { path: ['srt', 'passphrase'], type: 'string' },
	BROADCAST_RELAY_LIVE_GRACE_MS: { path: ['liveIngest', 'reconnectGraceMs'], type: 'number' },
};

type Plain = Record<string, unknown>;

function setPath(target: Plain, path: string[], value: unknown): void {
	let node = target;
	for (const key of path.slice(0, -1)) {
		if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
		node = node[key] as Plain;
	}
	node[path.at(-1)!] = value;
}

function deepMerge(base: Plain, over: Plain): Plain {
	const out: Plain = { ...base };
	for (const [key, value] of Object.entries(over)) {
		if (value === undefined) continue;
		const current = out[key];
		out[key] =
			value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
				? deepMerge(current as Plain, value as Plain)
				: value;
	}
	return out;
}

export function configFromEnvironment(env: NodeJS.ProcessEnv): Plain {
	const out: Plain = {};
	for (const [name, { path, type }] of Object.entries(ENVIRONMENT)) {
		const raw = env[name];
		if (raw === undefined) continue;
		if (type === 'list') {
			// A token variable that is set but holds nothing (an unset shell variable expanded into it) must not leave the service open.
			const items = raw.split(',').map((t) => t.trim());
			if (items.some((t) => t === '')) {
				throw new InvalidOptionError(`${name} has an empty entry; give comma-separated ${name.endsWith('_TOKENS') ? 'tokens of 8 or more characters' : 'values'}, or unset it`);
			}
			setPath(out, path, items);
			continue;
		}
		if (raw === '') continue;
		const value = type === 'number' ? Number(raw) : type === 'boolean' ? raw === 'true' : raw;
		setPath(out, path, value);
	}
	return out;
}

export function configFromFile(file: string): Plain {
	let text: string;
	try {
		text = readFileSync(file, 'utf8');
	} catch (error) {
		throw new InvalidOptionError(`cannot read config file ${file}: ${(error as Error).message}`);
	}
	let parsed: unknown;
	try {
		parsed = JSON.parse(text);
	} catch (error) {
		throw new InvalidOptionError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
	}
	if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
		throw new InvalidOptionError(`config file ${file} must hold one JSON object of options (see README, Configuration)`);
	}
	return parsed as Plain;
}

/**
 * Merges configuration, later sources winning: built-in defaults, the config
 * file, environment variables, command-line flags. Validates once and names
 * every bad field.
 */
export function loadServiceConfig(sources: { file?: string; env?: NodeJS.ProcessEnv; flags?: Plain } = {}): ServiceConfig {
	let merged: Plain = {};
	if (sources.file) merged = deepMerge(merged, configFromFile(sources.file));
	if (sources.env) merged = deepMerge(merged, configFromEnvironment(sources.env));
	if (sources.flags) merged = deepMerge(merged, sources.flags);
	const parsed = serviceConfigSchema.safeParse(merged);
	if (!parsed.success) {
		throw new InvalidOptionError(`invalid configuration: ${formatIssues(parsed.error, 'config')}`);
	}
	return parsed.data;
}
