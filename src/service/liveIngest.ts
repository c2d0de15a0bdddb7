import type { AccessPolicy } from '../auth/AccessPolicy.js';
import type { Logger } from '../logger.js';
import type { Relay } from '../Relay.js';
import { LiveIngest } from '../ingest/live/LiveIngest.js';
import { PublishRefusedError } from '../ingest/rtmp/RtmpSession.js';
import { RtmpServer } from '../ingest/rtmp/RtmpServer.js';
import { SrtListener } from '../ingest/srt/SrtListener.js';
import type { BroadcastCreator } from './broadcasts.js';
import type { ServiceConfig } from './config.js';

/** The service's RTMP and SRT ingest, when enabled: one LiveIngest, and the servers that feed it. */
export interface LiveIngestService {
	readonly live: LiveIngest;
	readonly rtmp?: RtmpServer;
	readonly srt?: SrtListener;
	/** Stops the servers (publishers disconnected) and ends every live feed. Idempotent. */
	close(): Promise<void>;
}

/**
 * Starts the RTMP server and the SRT listener the configuration enables. Stream
 * keys are checked as WHIP's bearer tokens are (a static ingest token, or a
 * signed token with publish permission for the broadcast); a publish to an
 * unknown broadcast creates it when autoCreateBroadcasts is on, within maxBroadcasts.
 */
export async function startLiveIngest(options: { config: ServiceConfig; relay: Relay; creator: BroadcastCreator; access: AccessPolicy; logger: Logger }): Promise<LiveIngestService | undefined> {
	const { config, relay, creator, access, logger } = options;
	if (!config.rtmp.enabled && !config.srt.enabled) return undefined;
	const listenIp = config.relay.listenIp;
	const live = new LiveIngest({
		withBroadcast: (id, use) => {
			const existed = relay.broadcasts.has(id);
			return creator.withBroadcast(id, config.autoCreateBroadcasts, (broadcast) => use(broadcast, !existed));
		},
		authorize: async ({ broadcastId, key }) => {
			try {
				await access.authorizeStreamKey(key, broadcastId);
			} catch (error) {
				throw new PublishRefusedError(`stream key refused: ${(error as Error).message}`, 'NetStream.Publish.Unauthorized');
			}
		},
		// The RTP ingest transports listen on the relay's listen IP; a wildcard is reached on loopback.
		host: listenIp === '0.0.0.0' || listenIp === '::' ? '127.0.0.1' : listenIp,
		graceMs: config.liveIngest.reconnectGraceMs,
		silentPublisherMs: config.relay.silentPublisherMs > 0 ? config.relay.silentPublisherMs : 3000,
		audioBitrateKbps: config.liveIngest.audioBitrateKbps,
		logger,
	});
	let rtmp: RtmpServer | undefined;
	let srt: SrtListener | undefined;
	try {
		if (config.rtmp.enabled) {
			rtmp = await RtmpServer.create({ host: config.rtmp.host ?? config.host, port: config.rtmp.port, onPublish: (request) => live.publishRtmp(request), logger });
		}
		if (config.srt.enabled) {
			srt = await SrtListener.create({
				ffmpegPath: relay.ffmpeg.path,
				host: config.srt.host ?? config.host,
				port: config.srt.port,
				passphrase: config.srt.passphrase,
				latencyMs: config.srt.latencyMs,
				onPublish: (request) => live.publishSrt(request),
				logger,
			});
		}
	} catch (error) {
		await rtmp?.close();
		live.close();
		throw error;
	}
	let closing: Promise<void> | undefined;
	return {
		live,
		rtmp,
		srt,
		close() {
			closing ??= (async () => {
				await Promise.all([rtmp?.close(), srt?.close()]);
				live.close();
			})();
			return closing;
		},
	};
}
