#!/usr/bin/env node
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { mintToken, parseDuration } from '../auth/mintToken.js';
import type { Permission } from '../auth/permissions.js';
import type { BroadcastStats, RtpIngestEndpoint } from '../Broadcast.js';
import { RelayError } from '../errors.js';
import { testSourceArgs } from '../ffmpeg/args.js';
import { resolveFfmpeg } from '../ffmpeg/binary.js';
import { FfmpegProcess } from '../ffmpeg/FfmpegProcess.js';
import { ENGINES, SCENARIOS } from '../harness/scenarios.js';
import type { RelayStats } from '../Relay.js';
import type { ClusterView } from '../cluster/ClusterNode.js';
import { clusterReport } from '../cluster/report.js';
import { relayRequest, RelayRefusedError, RelayUnreachableError, type RelayRequest } from '../relayClient.js';
import { loadServiceConfig } from '../service/config.js';
import { startService } from '../service/Service.js';

/** Exit codes, documented in README. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unreachable: 3, refused: 4 } as const;

class CliError extends Error {
	constructor(
		message: string,
		readonly exitCode: number,
	) {
		super(message);
	}
}

function integer(value: string): number {
	const parsed = Number(value);
	if (!Number.isInteger(parsed)) throw new InvalidArgumentError('not an integer');
	return parsed;
}

function collect(value: string, previous: string[] = []): string[] {
	return [...previous, value];
}

/** The relay's JSON API, with its failures turned into the CLI's exit codes. */
async function api<T>(relay: string, path: string, request: RelayRequest = {}): Promise<T> {
	try {
		return await relayRequest<T>(relay, path, request);
	} catch (error) {
		if (error instanceof RelayUnreachableError) throw new CliError(`${error.message}; is "broadcast-relay serve" running?`, EXIT.unreachable);
		if (error instanceof RelayRefusedError) throw new CliError(`${error.message}${error.status === 401 ? ' (pass --token)' : ''}`, EXIT.refused);
		throw error;
	}
}

function readSdpFile(file: string): string {
	try {
		return readFileSync(file, 'utf8');
	} catch (error) {
		throw new CliError(`cannot read --sdp ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; give the SDP file the encoder sends with`, EXIT.usage);
	}
}

/** Version of an installed package as this module would import it, or undefined when it is not installed. */
function installedVersion(name: string): string | undefined {
	let entry: string;
	try {
		entry = fileURLToPath(import.meta.resolve(name));
	} catch {
		return undefined;
	}
	for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
		const manifest = join(dir, 'package.json');
		if (!existsSync(manifest)) continue;
		const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
		if (parsed.name === name) return parsed.version;
	}
	return undefined;
}

/**
 * The benchmark, loaded only when asked for: the harness runs werift peers,
 * and werift is a dev dependency that a production install does not have.
 */
async function loadBench() {
	// node-av brings werift 0.23 as an optional dependency of its own; the harness is written for 0.25.
	const werift = installedVersion('werift');
	if (werift !== undefined && !werift.startsWith('0.25.')) {
		throw new CliError(`bench needs werift 0.25.x, found ${werift} (node-av's optional dependency): run it from a clone (npm ci) or npm install werift@0.25.2 beside broadcast-relay`, EXIT.usage);
	}
	try {
		const [bench, report] = await Promise.all([import('../harness/bench.js'), import('../harness/report.js')]);
		return { ...bench, ...report };
	} catch (error) {
		if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /werift/.test((error as Error).message)) {
			throw new CliError('bench needs werift, which production installs leave out: run it from a clone (npm ci) or npm install werift@0.25.2 beside broadcast-relay', EXIT.usage);
		}
		throw error;
	}
}

function statsLine(b: BroadcastStats): string {
	const video = b.reencoders.find((r) => r.kind === 'video');
	const reencoder = video ? `re-encoder ${video.running ? 'up' : 'DOWN'} ${video.fps.toFixed(0)} fps ${video.bitrateKbps.toFixed(0)} kbit/s restarts ${video.restarts}` : 'no re-encoder';
	const k = b.keyframeRequests;
	return `${b.id} [${b.mode}${b.live ? ', live' : ''}] viewers ${b.viewers} | keyframe requests: ${k.fromViewers} from viewers, ${k.absorbed} absorbed, ${k.forwardedUpstream} to broadcaster | ${reencoder} | workers ${b.workersInUse.join(',') || '-'}`;
}

const program = new Command()
	.name('broadcast-relay')
	.description('One WebRTC broadcaster to thousands of viewers, with a re-encoder tier that absorbs keyframe requests')
	.version('0.1.0')
	.showHelpAfterError('(run with --help for usage)')
	// Usage errors exit 2 (subcommands inherit this), help and version 0.
	.exitOverride((error) => {
		process.exit(error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? EXIT.ok : EXIT.usage);
	});

program
	.command('serve')
	.description('run the relay service (WHIP ingest, WHEP playback, API, metrics, web pages)')
	.option('-c, --config <file>', 'JSON config file (flags and BROADCAST_RELAY_* environment variables override it)')
	.option('--host <address>', 'HTTP listen address (default 127.0.0.1)')
	.option('-p, --port <port>', 'HTTP port (default 8080)', integer)
	.option('-w, --workers <n>', 'mediasoup workers (default: one per CPU core)', integer)
	.option('--demo [id]', 'start a demo broadcast from an FFmpeg test pattern (id default "demo")')
	.option('--ingest-token <token>', 'bearer token accepted for WHIP and ingest (repeatable)', collect)
	.option('--admin-token <token>', 'bearer token accepted for the admin API (repeatable)', collect)
	.option('--listen-ip <ip>', 'IP the WebRTC transports listen on (default 127.0.0.1)')
	.option('--announced-ip <ip>', 'IP announced in ICE candidates (behind NAT)')
	.option('--ffmpeg <path>', 'FFmpeg binary')
	.option('--cluster <redis-url>', 'join a cluster whose state is in this Redis (README, Cluster)')
	.option('--node-id <id>', 'this node\'s id in the cluster (default: the host name)')
	.option('--public-url <url>', 'base URL other nodes and redirected viewers reach this node at')
	.addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
	.option('--print-config', 'print the merged configuration and exit')
	.action(async (flags) => {
		const relay: Record<string, unknown> = {};
		if (flags.workers !== undefined) relay.workers = flags.workers;
		if (flags.listenIp) relay.listenIp = flags.listenIp;
		if (flags.announcedIp) relay.announcedIp = flags.announcedIp;
		if (flags.ffmpeg) relay.ffmpegPath = flags.ffmpeg;
		const config = loadServiceConfig({
			file: flags.config,
			env: process.env,
			flags: {
				host: flags.host,
				port: flags.port,
				demo: flags.demo === true ? 'demo' : flags.demo,
				ingestTokens: flags.ingestToken,
				adminTokens: flags.adminToken,
				logLevel: flags.logLevel,
				...(Object.keys(relay).length ? { relay } : {}),
				...(flags.cluster || flags.nodeId || flags.publicUrl ? { cluster: { redisUrl: flags.cluster, nodeId: flags.nodeId, publicUrl: flags.publicUrl } } : {}),
			},
		});
		if (flags.printConfig) {
			process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
			return;
		}
		const service = await startService(config);
		const watch = config.demo ? `\n  watch the demo:  ${service.url}/watch/${config.demo}` : '';
		process.stderr.write(`\nbroadcast-relay is up\n  dashboard:       ${service.url}/${watch}\n  publish (WHIP):  ${service.url}/whip/<broadcast>\n  play (WHEP):     ${service.url}/whep/<broadcast>\n\n`);
		let stopping = false;
		const stop = (signal: string) => {
			if (stopping) return;
			stopping = true;
			const timer = setTimeout(() => {
				process.stderr.write(`shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting anyway\n`);
				process.exit(EXIT.failure);
			}, config.shutdownTimeoutMs);
			timer.unref();
			process.stderr.write(`${signal}: shutting down\n`);
			service.close().then(
				() => process.exit(EXIT.ok),
				() => process.exit(EXIT.failure),
			);
		};
		process.on('SIGTERM', () => stop('SIGTERM'));
		process.on('SIGINT', () => stop('SIGINT'));
	});

program
	.command('attach')
	.description('attach a re-encoder to an RTP/SDP source on a running relay, and print where to send and where to watch')
	.requiredOption('-b, --broadcast <id>', 'broadcast id (created if it does not exist)')
	.option('-r, --relay <url>', 'relay base URL', 'http://127.0.0.1:8080')
	.option('-t, --token <token>', 'bearer token (ingest and admin)')
	.option('--sdp <file>', 'SDP file describing the RTP the encoder sends (needs a=ssrc lines)')
	.addOption(new Option('--codec <codec>', 'video codec the encoder sends').choices(['VP8', 'H264']).default('VP8'))
	.option('--payload-type <pt>', 'video RTP payload type', integer, 96)
	.option('--ssrc <ssrc>', 'video SSRC', integer, 1111)
	.option('--audio-ssrc <ssrc>', 'also ingest Opus audio with this SSRC (payload type 111)', integer)
	.addOption(new Option('--mode <mode>', 'relay (re-encode) or baseline').choices(['relay', 'baseline']).default('relay'))
	.option('--test-source', 'send FFmpeg test pattern to the ingest from here (a stand-in encoder)')
	.option('-f, --follow', 'print live stats every second until interrupted')
	.action(async (flags) => {
		const { relay, token } = flags;
		const id = encodeURIComponent(flags.broadcast);
		// Read before anything is created on the relay, so a wrong path changes nothing there.
		const sdp = flags.sdp ? readSdpFile(flags.sdp) : undefined;
		const existing = await api<BroadcastStats[]>(relay, '/api/broadcasts', { token });
		if (!existing.some((b) => b.id === flags.broadcast)) {
			await api(relay, '/api/broadcasts', { method: 'POST', body: { id: flags.broadcast, mode: flags.mode }, token });
		}
		const streams = [{ codec: flags.codec, payloadType: flags.payloadType, ssrc: flags.ssrc }];
		if (flags.audioSsrc !== undefined) streams.push({ codec: 'opus', payloadType: 111, ssrc: flags.audioSsrc });
		const body = sdp ? { sdp } : { streams };
		const { endpoints } = await api<{ endpoints: RtpIngestEndpoint[] }>(
			relay,
			`/api/broadcasts/${id}/rtp-ingest`,
			{ method: 'POST', body, token },
		);
		for (const e of endpoints) process.stdout.write(`send ${e.kind} RTP to ${e.ip}:${e.port} (RTCP ${e.rtcpPort})\n`);
		process.stdout.write(`watch: ${relay.replace(/\/+$/, '')}/watch/${id}\nWHEP:  ${relay.replace(/\/+$/, '')}/whep/${id}\n`);

		let source: FfmpegProcess | undefined;
		if (flags.testSource) {
			const video = endpoints.find((e) => e.kind === 'video')!;
			const audio = endpoints.find((e) => e.kind === 'audio');
			source = new FfmpegProcess({
				binary: resolveFfmpeg().path,
				args: testSourceArgs({
					video: { codec: flags.codec, width: 1280, height: 720, fps: 30, bitrateKbps: 2000, keyframeIntervalSeconds: 4, threads: 1 },
					videoTarget: { host: video.ip, rtpPort: video.port, rtcpPort: video.rtcpPort, ssrc: flags.ssrc, payloadType: flags.payloadType },
					...(audio ? { audioTarget: { host: audio.ip, rtpPort: audio.port, rtcpPort: audio.rtcpPort, ssrc: flags.audioSsrc, payloadType: 111 } } : {}),
				}),
				logger: pino({ level: 'warn' }, pino.destination(2)),
			});
			await source.start();
			process.stdout.write('sending the FFmpeg test pattern\n');
		}
		if (!flags.follow && !source) return;
		const stop = async () => {
			await source?.close();
			process.exit(EXIT.ok);
		};
		process.on('SIGINT', () => void stop());
		process.on('SIGTERM', () => void stop());
		for (;;) {
			if (flags.follow) {
				const stats = await api<BroadcastStats>(relay, `/api/broadcasts/${id}`, { token });
				process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${statsLine(stats)}\n`);
			}
			await new Promise((resolve) => setTimeout(resolve, 1000));
		}
	});

program
	.command('status')
	.description('show the broadcasts and worker load of a running relay')
	.option('-r, --relay <url>', 'relay base URL', 'http://127.0.0.1:8080')
	.option('-t, --token <token>', 'admin bearer token')
	.option('--json', 'print the raw JSON')
	.option('--cluster', 'show the cluster instead: nodes, load, each broadcast\'s origin, edges and pull tree')
	.action(async (flags) => {
		if (flags.cluster) {
			const view = await api<ClusterView>(flags.relay, '/api/cluster', { token: flags.token });
			process.stdout.write(flags.json ? `${JSON.stringify(view, null, 2)}\n` : clusterReport(view));
			return;
		}
		const status = await api<RelayStats>(
			flags.relay,
			'/api/status',
			{ token: flags.token },
		);
		if (flags.json) {
			process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
			return;
		}
		process.stdout.write(`relay ${flags.relay}: ${status.ready ? 'ready' : 'NOT READY (rebuilding workers)'}\n\nworkers:\n`);
		for (const w of status.workers) {
			process.stdout.write(`  #${w.index} pid ${w.pid} ${w.alive ? 'alive' : 'DEAD'}  consumers ${w.consumers}/${w.budget}\n`);
		}
		process.stdout.write(`\nbroadcasts:${status.broadcasts.length ? '' : ' none'}\n`);
		for (const b of status.broadcasts) process.stdout.write(`  ${statsLine(b)}\n`);
	});

program
	.command('token')
	.description('mint a signed token (JWT, HS256) for publishing, playing or the admin API; the secret comes from --secret, BROADCAST_RELAY_TOKEN_SECRET or the config file')
	.option('--publish <broadcast>', 'may publish to this broadcast (an id, or a pattern with *; repeatable)', collect)
	.option('--play <broadcast>', 'may play this broadcast (an id, or a pattern with *; repeatable)', collect)
	.option('--admin', 'may use the admin API and /metrics')
	.option('--ttl <duration>', 'lifetime: 90s, 30m, 2h, 7d', '1h')
	.option('-c, --config <file>', 'the relay\'s JSON config file, for signedTokens.secret, audience and issuer')
	.option('--secret <secret>', 'HS256 secret (prefer BROADCAST_RELAY_TOKEN_SECRET: a flag shows in the process list)')
	.option('--subject <name>', 'who the token is for ("sub", shown in the relay\'s logs)')
	.action(async (flags) => {
		const ttlSeconds = parseDuration(flags.ttl);
		if (ttlSeconds === undefined) throw new CliError(`--ttl ${flags.ttl} is not a duration; give e.g. 90s, 30m, 2h or 7d`, EXIT.usage);
		const config = loadServiceConfig({ file: flags.config, env: process.env, flags: flags.secret ? { signedTokens: { secret: flags.secret } } : {} });
		const { secret, audience, issuer, jwksUrl, jwksFile } = config.signedTokens;
		if (!secret) {
			throw new CliError(
				jwksUrl || jwksFile
					? 'this relay checks tokens against a JWKS (public keys): mint them where the private key is, e.g. your identity provider'
					: 'no secret: set BROADCAST_RELAY_TOKEN_SECRET (the relay\'s signedTokens.secret) or pass --secret or --config',
				EXIT.usage,
			);
		}
		const permissions: Permission[] = [
			...(flags.publish ?? []).map((broadcast: string) => ({ action: 'publish' as const, broadcast })),
			...(flags.play ?? []).map((broadcast: string) => ({ action: 'play' as const, broadcast })),
			...(flags.admin ? [{ action: 'admin' as const }] : []),
		];
		const token = await mintToken({ secret, permissions, ttlSeconds, audience, issuer, subject: flags.subject });
		process.stdout.write(`${token}\n`);
		const grants = permissions.map((p) => (p.action === 'admin' ? 'admin' : `${p.action} ${p.broadcast}`)).join(', ');
		process.stderr.write(`grants ${grants} until ${new Date(Date.now() + ttlSeconds * 1000).toISOString()}\n`);
	});

program
	.command('bench')
	.description('run the benchmark: every scenario in baseline mode and in relay mode per re-encoder engine, side by side, then the saturation ramp')
	.option('--smoke', 'a few seconds per scenario with a handful of viewers (keeps the harness working; measures nothing serious)')
	.option('-o, --out <dir>', 'where to write report.json, report.md and saturation.svg', 'bench-results')
	.option('--scenarios <list>', `comma-separated subset of ${SCENARIOS.join(', ')}`)
	.option('--duration <seconds>', 'seconds per scenario and mode', integer)
	.option('--sink-viewers <n>', 'SRTP load-test viewers per scenario', integer)
	.option('--werift-viewers <n>', 'real WebRTC (werift) viewers per scenario', integer)
	.option('--engines <list>', `comma-separated re-encoder engines to compare, each in relay mode beside baseline (default ${ENGINES.join(',')})`)
	.option('--workers <n>', 'mediasoup workers for the scenarios', integer)
	.addOption(new Option('--codec <codec>', "synthetic broadcaster's video codec").choices(['VP8', 'H264']))
	.option('--no-audio', 'the broadcaster sends no Opus audio')
	.option('--size <WxH>', 'broadcaster video size, e.g. 1280x720')
	.option('--fps <n>', 'broadcaster frame rate', integer)
	.option('--bitrate <kbps>', 'broadcaster bitrate, kbit/s', integer)
	.option('--keyframe-interval <seconds>', "re-encoder's keyframe interval", Number)
	.option('--max-consumers <n>', 'most consumers the saturation ramp tries on one worker', integer)
	.option('--no-saturation', 'skip the saturation ramp')
	.option('--no-abr', 'skip the ABR scenario (Chromium viewers at mixed link capacities; a simulcast ladder against one rendition)')
	.option('--isolated-saturation', 'also the isolated ramp: worker pinned to its own core; OpenSSL and NSS worker builds and raw mediasoup side by side')
	.option('--seed <n>', 'seed of the lossy links', integer)
	.option('--cluster <n>', 'the cluster benchmark instead: n local nodes on a Redis of its own, viewers spread by an entry node (README, Cluster)', integer)
	.option('--viewers-per-node <n>', 'cluster benchmark: viewers a node takes before it redirects', integer, 4)
	.option('--cluster-viewers <n>', 'cluster benchmark: viewers in all (default: nodes × viewers per node − 1)', integer)
	.option('--max-edge-pulls <n>', 'cluster benchmark: pulls one node serves per broadcast', integer, 8)
	.option('--redis-server <path>', 'cluster benchmark: redis-server binary', '/usr/bin/redis-server')
	.action(async (flags) => {
		if (flags.cluster !== undefined) {
			await loadBench();
			const { runClusterBench, clusterBenchMarkdown } = await import('../cluster/bench.js');
			const report = await runClusterBench({
				nodes: flags.cluster,
				viewersPerNode: flags.viewersPerNode,
				viewers: flags.clusterViewers,
				durationSeconds: flags.duration ?? (flags.smoke ? 3 : 20),
				maxEdgePulls: flags.maxEdgePulls,
				redisServer: flags.redisServer,
				// The nodes are this CLI again (under tsx from a clone, compiled from a package).
				cli: { execPath: process.execPath, args: [...process.execArgv, process.argv[1]!] },
				onProgress: (line) => process.stderr.write(`${line}\n`),
			});
			mkdirSync(flags.out, { recursive: true });
			writeFileSync(join(flags.out, 'cluster-report.json'), `${JSON.stringify(report, null, 2)}\n`);
			process.stdout.write(`${clusterBenchMarkdown(report)}\n\nwrote ${join(flags.out, 'cluster-report.json')}\n`);
			process.exit(EXIT.ok);
		}
		const { defaultBenchOptions, runBench, progressBar, writeReport, markdownReport, defaultIsolatedSaturationOptions, isolatedSaturationMarkdown } = await loadBench();
		const options = defaultBenchOptions(Boolean(flags.smoke));
		if (flags.scenarios) {
			const wanted = String(flags.scenarios).split(',').map((s) => s.trim());
			const unknown = wanted.filter((s) => !(SCENARIOS as readonly string[]).includes(s));
			if (unknown.length) throw new CliError(`unknown scenario ${unknown.join(', ')}; pick from ${SCENARIOS.join(', ')}`, EXIT.usage);
			options.scenarios = wanted as typeof options.scenarios;
		}
		if (flags.engines) {
			const wanted = String(flags.engines).split(',').map((s) => s.trim()).filter(Boolean);
			const unknown = wanted.filter((s) => !(ENGINES as readonly string[]).includes(s));
			if (unknown.length || wanted.length === 0) throw new CliError(`unknown engine ${unknown.join(', ') || '(none given)'}; pick from ${ENGINES.join(', ')}`, EXIT.usage);
			options.engines = [...new Set(wanted)] as typeof options.engines;
		}
		if (flags.duration) options.durationSeconds = flags.duration;
		if (flags.sinkViewers !== undefined) options.sinkViewers = flags.sinkViewers;
		if (flags.weriftViewers !== undefined) options.weriftViewers = flags.weriftViewers;
		if (flags.workers) options.workers = flags.workers;
		if (flags.size) {
			const match = /^(\d+)x(\d+)$/.exec(flags.size);
			if (!match) throw new CliError('--size takes WIDTHxHEIGHT, e.g. 1280x720', EXIT.usage);
			options.video = { ...options.video, width: Number(match[1]), height: Number(match[2]) };
		}
		if (flags.fps) options.video = { ...options.video, fps: flags.fps };
		if (flags.codec) options.video = { ...options.video, codec: flags.codec };
		if (flags.audio === false) options.audio = false;
		if (flags.bitrate) options.video = { ...options.video, bitrateKbps: flags.bitrate };
		if (flags.keyframeInterval) options.keyframeIntervalSeconds = flags.keyframeInterval;
		if (flags.seed !== undefined) options.seed = flags.seed;
		if (flags.saturation === false) options.saturation = undefined;
		if (flags.abr === false) options.abr = undefined;
		else if (options.abr) options.abr.video = { width: options.video.width, height: options.video.height, fps: options.video.fps, bitrateKbps: options.video.bitrateKbps };
		else if (flags.maxConsumers && options.saturation) options.saturation = { ...options.saturation, maxConsumers: flags.maxConsumers };
		if (flags.isolatedSaturation) options.isolatedSaturation = defaultIsolatedSaturationOptions(Boolean(flags.smoke));
		const started = Date.now();
		const report = await runBench({ ...options, onProgress: progressBar() });
		const paths = writeReport(report, flags.out);
		process.stderr.write(`\n`);
		process.stdout.write(`${markdownReport(report)}\n\nwrote ${paths.json}, ${paths.markdown} and ${paths.svg} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
		if (report.isolatedSaturation) process.stdout.write(`\n${isolatedSaturationMarkdown(report.isolatedSaturation)}\n`);
		// Every relay, FFmpeg and peer the bench made is closed by now (the bench test checks the FFmpegs),
		// but after a smoke run 15 pairs of UDP sockets bound on 0.0.0.0 and :: (werift's ICE sockets)
		// stayed open although every peer's close() had resolved, and kept the process alive for ever.
		process.exit(EXIT.ok);
	});

program.parseAsync(process.argv).catch((error: unknown) => {
	if (error instanceof CliError) {
		process.stderr.write(`broadcast-relay: ${error.message}\n`);
		process.exit(error.exitCode);
	}
	if (error instanceof RelayError) {
		process.stderr.write(`broadcast-relay: ${error.message}\n`);
		// Configuration and environment errors (bad option, no usable FFmpeg, a port in use) are exit 2, as documented.
		process.exit(error.code === 'ERR_INVALID_OPTION' || error.code === 'ERR_FFMPEG_NOT_FOUND' ? EXIT.usage : EXIT.failure);
	}
	process.stderr.write(`broadcast-relay: ${(error as Error).stack ?? String(error)}\n`);
	process.exit(EXIT.failure);
});
