import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Relay, RelayStats } from '../../Relay.js';
import type { AccessPolicy } from '../../auth/AccessPolicy.js';
import { authorizeRequest } from '../auth.js';
import type { SessionRegistry } from '../sessions.js';

export interface Metrics {
	registry: Registry;
	/** Takes the stats snapshot the gauges read; call before each scrape. */
	refresh(): Promise<void>;
}

/**
 * Prometheus metrics. Everything is read from one relay stats snapshot taken
 * at scrape time (refresh(), then registry.metrics()), so nothing has to be
 * kept in step. prom-client runs collect() callbacks concurrently, so the
 * snapshot cannot be taken inside one of them.
 *
 * Prometheus conventions: running totals are counters named *_total (their
 * value is the relay's own running count, set at each scrape; a broadcast
 * that is re-created starts again from 0, which Prometheus reads as a counter
 * reset), levels are gauges.
 */
export function createMetrics(relay: Relay, sessions: SessionRegistry): Metrics {
	const registry = new Registry();
	collectDefaultMetrics({ register: registry, prefix: 'broadcast_relay_process_' });
	let current: RelayStats | undefined;

	const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, stats: RelayStats) => void) =>
		new Gauge({
			name,
			help,
			labelNames,
			registers: [registry],
			collect() {
				this.reset();
				if (current) fill(this, current);
			},
		});

	const counter = (name: string, help: string, labelNames: string[], fill: (set: (labels: Record<string, string>, total: number) => void, stats: RelayStats) => void) =>
		new Counter({
			name,
			help,
			labelNames,
			registers: [registry],
			collect() {
				this.reset();
				if (current) fill((labels, total) => this.inc(labels, Math.max(0, total)), current);
			},
		});

	gauge('broadcast_relay_ready', '1 when every worker is up, 0 while a dead worker is being replaced', [], (g, s) => g.set(s.ready ? 1 : 0));
	gauge('broadcast_relay_broadcasts', 'Broadcasts, live or not', [], (g, s) => g.set(s.broadcasts.length));
	gauge('broadcast_relay_viewers', 'Viewers per broadcast', ['broadcast'], (g, s) => {
		for (const b of s.broadcasts) g.set({ broadcast: b.id }, b.viewers);
	});
	gauge('broadcast_relay_worker_consumers', 'Consumers placed per worker', ['worker'], (g, s) => {
		for (const w of s.workers) g.set({ worker: String(w.index) }, w.consumers);
	});
	gauge('broadcast_relay_worker_alive', 'Whether each worker is alive', ['worker'], (g, s) => {
		for (const w of s.workers) g.set({ worker: String(w.index) }, w.alive ? 1 : 0);
	});
	counter(
		'broadcast_relay_keyframe_requests_total',
		'Keyframe requests (PLI/FIR) since the broadcast started: from viewers, absorbed by the relay, forwarded to the broadcaster, sent to the re-encoder',
		['broadcast', 'stage'],
		(set, s) => {
			for (const b of s.broadcasts) {
				set({ broadcast: b.id, stage: 'from_viewers' }, b.keyframeRequests.fromViewers);
				set({ broadcast: b.id, stage: 'absorbed' }, b.keyframeRequests.absorbed);
				set({ broadcast: b.id, stage: 'forwarded_upstream' }, b.keyframeRequests.forwardedUpstream);
				set({ broadcast: b.id, stage: 'to_reencoder' }, b.keyframeRequests.toReencoder);
			}
		},
	);
	gauge('broadcast_relay_reencoder_fps', 'Re-encoder output frame rate', ['broadcast', 'kind'], (g, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) g.set({ broadcast: b.id, kind: r.kind }, r.fps);
	});
	gauge('broadcast_relay_reencoder_bitrate_kbps', 'Re-encoder output bitrate, kbit/s', ['broadcast', 'kind'], (g, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) g.set({ broadcast: b.id, kind: r.kind }, r.bitrateKbps);
	});
	gauge('broadcast_relay_reencoder_speed', 'Re-encoder speed relative to real time', ['broadcast', 'kind'], (g, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) g.set({ broadcast: b.id, kind: r.kind }, r.speed);
	});
	counter('broadcast_relay_reencoder_restarts_total', "Times a re-encoder's process (FFmpeg, or the libav engine) was restarted after dying", ['broadcast', 'kind'], (set, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) set({ broadcast: b.id, kind: r.kind }, r.restarts);
	});
	gauge('broadcast_relay_reencoder_running', "1 while a re-encoder's process runs, 0 while it is being restarted", ['broadcast', 'kind'], (g, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) g.set({ broadcast: b.id, kind: r.kind }, r.running ? 1 : 0);
	});
	gauge('broadcast_relay_layer_viewers', 'Viewers per simulcast layer of the re-encoded video (0: the lowest), now', ['broadcast', 'layer'], (g, s) => {
		for (const b of s.broadcasts) if (b.layers.ladder.length > 1) b.layers.viewersPerLayer.forEach((n, layer) => g.set({ broadcast: b.id, layer: String(layer) }, n));
	});
	counter('broadcast_relay_layer_switches_total', "Layer changes mediasoup made for viewers of a ladder (bandwidth estimation, or a viewer's or the broadcast's limit)", ['broadcast'], (set, s) => {
		for (const b of s.broadcasts) if (b.layers.ladder.length > 1) set({ broadcast: b.id }, b.layers.switches);
	});
	counter('broadcast_relay_layer_seconds_total', 'Seconds viewers spent on each simulcast layer (viewers gone included)', ['broadcast', 'layer'], (set, s) => {
		for (const b of s.broadcasts) if (b.layers.ladder.length > 1) b.layers.secondsPerLayer.forEach((seconds, layer) => set({ broadcast: b.id, layer: String(layer) }, seconds));
	});
	gauge('broadcast_relay_reencoder_layer_bitrate_kbps', 'Re-encoded video bitrate per simulcast layer, kbit/s', ['broadcast', 'layer'], (g, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) r.layers?.forEach((layer, i) => g.set({ broadcast: b.id, layer: String(i) }, layer.bitrateKbps));
	});
	gauge('broadcast_relay_reencoder_health', 'Re-encoder health: 1 for its current state (ok, degraded, stalled), 0 for the others', ['broadcast', 'kind', 'engine', 'state'], (g, s) => {
		for (const b of s.broadcasts) {
			for (const r of b.reencoders) for (const state of ['ok', 'degraded', 'stalled']) g.set({ broadcast: b.id, kind: r.kind, engine: r.engine, state }, r.health.state === state ? 1 : 0);
		}
	});
	counter('broadcast_relay_reencoder_keyframes_total', 'Keyframes the re-encoder made: on its fixed interval, or on demand for viewers (libav engine)', ['broadcast', 'kind', 'reason'], (set, s) => {
		for (const b of s.broadcasts) {
			for (const r of b.reencoders) {
				if (r.keyframes === undefined) continue;
				set({ broadcast: b.id, kind: r.kind, reason: 'on_demand' }, r.keyframesOnDemand ?? 0);
				set({ broadcast: b.id, kind: r.kind, reason: 'interval' }, r.keyframes - (r.keyframesOnDemand ?? 0));
			}
		}
	});
	counter('broadcast_relay_reencoder_keyframe_requests_received_total', "Viewers' keyframe requests that reached the re-encoder's sender, coalesced there (libav engine)", ['broadcast', 'kind'], (set, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) if (r.keyframeRequestsReceived !== undefined) set({ broadcast: b.id, kind: r.kind }, r.keyframeRequestsReceived);
	});
	counter('broadcast_relay_reencoder_upstream_keyframe_requests_total', 'Keyframe requests the re-encoder sent to the broadcaster', ['broadcast', 'kind'], (set, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) set({ broadcast: b.id, kind: r.kind }, r.upstreamKeyframeRequests);
	});
	counter('broadcast_relay_reencoder_input_packets_total', "The re-encoder's input repair (libav engine): NACKs sent, packets repaired, packets lost for good", ['broadcast', 'kind', 'outcome'], (set, s) => {
		for (const b of s.broadcasts) {
			for (const r of b.reencoders) {
				if (r.nacksSent === undefined) continue;
				set({ broadcast: b.id, kind: r.kind, outcome: 'nacked' }, r.nacksSent);
				set({ broadcast: b.id, kind: r.kind, outcome: 'repaired' }, r.packetsRepaired ?? 0);
				set({ broadcast: b.id, kind: r.kind, outcome: 'lost' }, r.packetsLost ?? 0);
			}
		}
	});
	gauge('broadcast_relay_reencoder_latency_ms', "Arrival of a frame to its re-encoded packets leaving, over the last second (libav engine)", ['broadcast', 'kind', 'quantile'], (g, s) => {
		for (const b of s.broadcasts) {
			for (const r of b.reencoders) {
				if (r.latencyMsP50 === undefined) continue;
				g.set({ broadcast: b.id, kind: r.kind, quantile: '0.5' }, r.latencyMsP50);
				g.set({ broadcast: b.id, kind: r.kind, quantile: '0.95' }, r.latencyMsP95 ?? 0);
			}
		}
	});
	gauge('broadcast_relay_reencoder_effort', 'Encoder effort level under CPU pressure: 0 normal, 1 cheaper settings, 2 half resolution (libav engine)', ['broadcast', 'kind'], (g, s) => {
		for (const b of s.broadcasts) for (const r of b.reencoders) if (r.effort !== undefined) g.set({ broadcast: b.id, kind: r.kind }, r.effort);
	});
	gauge('broadcast_relay_broadcaster_bitrate_bps', "Broadcaster's incoming bitrate, bit/s", ['broadcast', 'kind'], (g, s) => {
		for (const b of s.broadcasts) {
			for (const [kind, bps] of Object.entries(b.broadcasterBitrate)) g.set({ broadcast: b.id, kind }, bps ?? 0);
		}
	});
	new Gauge({
		name: 'broadcast_relay_http_sessions',
		help: 'Open WHIP, WHEP and pipe-ingest sessions',
		labelNames: ['kind'],
		registers: [registry],
		collect() {
			for (const kind of ['whip', 'whep', 'pipe'] as const) this.set({ kind }, sessions.count(kind));
		},
	});
	new Counter({
		name: 'broadcast_relay_http_sessions_total',
		help: 'WHIP, WHEP and pipe-ingest sessions opened since start',
		labelNames: ['kind'],
		registers: [registry],
		collect() {
			this.reset();
			for (const kind of ['whip', 'whep', 'pipe'] as const) this.inc({ kind }, sessions.opened(kind));
		},
	});
	return {
		registry,
		async refresh() {
			current = await relay.getStats();
		},
	};
}

/** Query parameters whose values are secrets (page URLs may carry ?token=…). */
const SECRET_PARAMS = /([?&](?:token|access_token)=)[^&#]*/gi;

/** A URL as it may appear in a log line: secret query values replaced by "[redacted]". */
export function redactUrl(url: string): string {
	return url.replace(SECRET_PARAMS, '$1[redacted]');
}

export function registerOperations(app: FastifyInstance, relay: Relay, metrics: Metrics, requests: Counter, access: AccessPolicy): void {
	app.get('/healthz', async () => ({ status: 'ok' }));
	app.get('/readyz', async (_request, reply) =>
		relay.ready ? { status: 'ready' } : reply.code(503).header('retry-after', '1').send({ status: 'rebuilding workers' }),
	);
	app.get('/metrics', async (request, reply) => {
		// /metrics lists every broadcast id and its load: metrics or admin tokens; open only when no token could grant it.
		if (!(await authorizeRequest(request, reply, access, { action: 'metrics' }, 'metrics'))) return reply;
		await metrics.refresh();
		return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
	});
	app.addHook('onResponse', async (request, reply) => {
		requests.inc({ route: request.routeOptions.url ?? 'unknown', method: request.method, status: String(reply.statusCode) });
		// The request log, written here instead of by fastify so that no token reaches it (pages may carry ?token=…).
		request.log.info(
			{ method: request.method, url: redactUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime), remote: request.ip },
			'request',
		);
	});
}
