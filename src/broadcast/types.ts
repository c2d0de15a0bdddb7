import type { types as ms } from 'mediasoup';
import { ingestRouterCodecs } from '../codecs.js';
import type { RouterInfo } from '../fanout/FanOut.js';
import type { Logger } from '../logger.js';
import type { BroadcastOptions } from '../options.js';
import type { PortPool } from '../ports/PortPool.js';
import type { TrackReencoderStats } from '../reencoder/TrackReencoder.js';
import type { Viewer, ViewerCloseReason, ViewerTransportOptions } from '../viewers/Viewer.js';
import type { WorkerPool } from '../workers/WorkerPool.js';
import type { KeyframeRequestStats } from './KeyframeCounter.js';

/** Everything a broadcast needs from its relay. */
export interface BroadcastContext {
	pool: WorkerPool;
	ports: PortPool;
	ffmpegPath: string;
	budget: { consumersPerWorker: number; consumersPerRouter: number };
	/** Consumers placed on a worker by every broadcast of the relay (the per-worker budget spans them). */
	workerConsumers(workerIndex: number): number;
	transport: ViewerTransportOptions;
	restartBackoff: { initialMs: number; maxMs: number };
	/** A WebRTC publisher silent this long gives way to a new publish, ms; 0: never. */
	silentPublisherMs: number;
	/** Picks live workers for the ingest and encoder routers. */
	pickWorkers(): { ingest: number; encoder: number };
	logger: Logger;
}

export interface BroadcastStats {
	id: string;
	mode: BroadcastOptions['mode'];
	live: boolean;
	viewers: number;
	keyframeRequests: KeyframeRequestStats;
	reencoders: TrackReencoderStats[];
	/**
	 * The re-encoded video's simulcast ladder (lowest first) and its viewers: how many
	 * are on each layer now, layer switches and seconds per layer since the start.
	 */
	layers: {
		ladder: Array<{ width: number; height: number; bitrateKbps: number; fps: number }>;
		maxLayer: number;
		viewersPerLayer: number[];
		switches: number;
		secondsPerLayer: number[];
	};
	routers: RouterInfo[];
	workersInUse: number[];
	/** Bitrate the broadcaster sends, bit/s, per kind (from mediasoup producer stats). */
	broadcasterBitrate: Partial<Record<ms.MediaKind, number>>;
	ingest: { workerIndex: number; encoderWorkerIndex: number };
}

export interface BroadcastEvents {
	/** Viewers whose worker died. Their transports are gone: reconnect them (they will be placed elsewhere). */
	viewerslost: [{ workerIndex: number; viewerIds: string[] }];
	viewerjoined: [Viewer];
	viewerleft: [{ viewerId: string; reason: ViewerCloseReason }];
	/** The source of `kind` ended (its producer closed, or its ingest worker died and it cannot be re-attached). */
	sourceclosed: [{ kind: ms.MediaKind; reason: string }];
	/** A re-encoder's FFmpeg was restarted. */
	reencoderrestarted: [{ kind: ms.MediaKind; restarts: number }];
	/** The ingest or encoder worker died and the pipeline was rebuilt on live workers. */
	rebuilt: [{ workerIndex: number }];
	/** The pipeline could not be rebuilt after `workerIndex` died; the broadcast closes right after this event. */
	rebuildfailed: [{ workerIndex: number; error: Error }];
	'@close': [];
}

/** Opens one of a broadcast's own routers (ingest or encoder) on a worker: every codec the relay takes in. */
export function openBroadcastRouter(pool: WorkerPool, options: { workerIndex: number; broadcastId: string; tier: 'ingest' | 'encoder' }): Promise<ms.Router> {
	const { workerIndex, broadcastId, tier } = options;
	return pool.slot(workerIndex).worker.createRouter({ mediaCodecs: ingestRouterCodecs(), appData: { broadcastId, tier } });
}
