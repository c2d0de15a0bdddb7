import type { Broadcast } from '../Broadcast.js';
import { testSourceArgs } from '../ffmpeg/args.js';
import { FfmpegProcess } from '../ffmpeg/FfmpegProcess.js';
import type { RtpIngestEndpoint } from '../broadcast/ingest/rtp.js';
import type { Logger } from '../logger.js';
import type { Relay } from '../Relay.js';

export interface DemoBroadcast {
	readonly id: string;
	close(): Promise<void>;
}

const VIDEO_SSRC = 0x0d3d0001;
const AUDIO_SSRC = 0x0d3d0002;
const STREAMS = [
	{ codec: 'VP8', payloadType: 96, ssrc: VIDEO_SSRC },
	{ codec: 'opus', payloadType: 111, ssrc: AUDIO_SSRC },
] as const;

/** Delay before FFmpeg is started again after it died, or an ingest is opened again after that failed, ms. */
const RETRY_MS = 1000;

/**
 * A demo broadcast so a newcomer sees video at once: FFmpeg's test pattern and
 * a tone, encoded as a broadcaster would (VP8, keyframe every 2 s, as OBS recommends) and sent
 * over plain RTP to the relay's RTP ingest. The demo is a source the relay runs
 * itself, so it comes back by itself: FFmpeg is restarted if it dies, and when
 * its RTP source closes (its ingest worker died: a plain-RTP sender cannot be
 * moved, and the new ingest router has new ports) it opens the RTP ingest
 * again and restarts FFmpeg towards the new endpoints.
 */
export async function startDemoBroadcast(relay: Relay, id: string, logger: Logger): Promise<DemoBroadcast> {
	const log = logger.child({ module: 'demo', broadcastId: id });
	const broadcast = await relay.createBroadcast({ id });
	const demo = new DemoSource(relay, broadcast, log);
	try {
		await demo.open();
	} catch (error) {
		await demo.close();
		await broadcast.close();
		throw error;
	}
	log.info({ watch: `/watch/${id}` }, 'demo broadcast started');
	return { id, close: () => demo.close() };
}

/** The demo's FFmpeg and the RTP ingest endpoints it sends to; reopens both when the broadcast loses the source. */
class DemoSource {
	readonly #relay: Relay;
	readonly #broadcast: Broadcast;
	readonly #log: Logger;
	#endpoints: RtpIngestEndpoint[] = [];
	#ffmpeg?: FfmpegProcess;
	/** Reopens run one after another; each checks first whether one is still needed. */
	#queue: Promise<void> = Promise.resolve();
	#retry?: NodeJS.Timeout;
	#closed = false;
	readonly #onSourceLost = (): void => this.#reopenSoon();

	constructor(relay: Relay, broadcast: Broadcast, log: Logger) {
		this.#relay = relay;
		this.#broadcast = broadcast;
		this.#log = log;
		broadcast.on('sourceclosed', this.#onSourceLost);
		broadcast.on('rebuilt', this.#onSourceLost);
	}

	/** Opens the RTP ingest and starts FFmpeg towards it. */
	async open(): Promise<void> {
		this.#endpoints = await this.#broadcast.ingestRtp(STREAMS.map((s) => ({ ...s })));
		await this.#startFfmpeg();
	}

	/** True while every stream the demo opened is still the broadcast's live source of its kind. */
	#sourcesLive(): boolean {
		return this.#endpoints.length > 0 && this.#endpoints.every((e) => this.#broadcast.source(e.kind)?.id === e.producerId && !this.#broadcast.source(e.kind)!.closed);
	}

	#reopenSoon(): void {
		if (this.#closed) return;
		this.#queue = this.#queue.then(() => this.#reopen());
	}

	async #reopen(): Promise<void> {
		if (this.#closed || this.#broadcast.closed || this.#sourcesLive()) return;
		this.#log.warn('demo source lost (ingest rebuilt or source closed); opening the RTP ingest again');
		const ffmpeg = this.#ffmpeg;
		this.#ffmpeg = undefined;
		await ffmpeg?.close();
		// A comedia transport keeps the address of its first sender: a stream that survived must be opened again too.
		for (const endpoint of this.#endpoints) {
			const producer = this.#broadcast.source(endpoint.kind);
			if (producer?.id === endpoint.producerId) producer.close();
		}
		this.#endpoints = [];
		try {
			if (this.#closed) return;
			await this.open();
			this.#log.info('demo source reopened');
		} catch (error) {
			if (this.#closed || this.#broadcast.closed) return;
			this.#log.error({ err: error }, 'demo source could not be reopened; retrying');
			this.#retry = setTimeout(() => this.#reopenSoon(), RETRY_MS);
		}
	}

	async #startFfmpeg(): Promise<void> {
		const video = this.#endpoints.find((e) => e.kind === 'video')!;
		const audio = this.#endpoints.find((e) => e.kind === 'audio')!;
		const args = testSourceArgs({
			video: { codec: 'VP8', width: 1280, height: 720, fps: 30, bitrateKbps: 2000, keyframeIntervalSeconds: 2, threads: 1 },
			videoTarget: { host: video.ip, rtpPort: video.port, rtcpPort: video.rtcpPort, ssrc: VIDEO_SSRC, payloadType: 96 },
			audioTarget: { host: audio.ip, rtpPort: audio.port, rtcpPort: audio.rtcpPort, ssrc: AUDIO_SSRC, payloadType: 111 },
		});
		const ffmpeg = new FfmpegProcess({ binary: this.#relay.ffmpeg.path, args, logger: this.#log });
		this.#ffmpeg = ffmpeg;
		ffmpeg.on('died', () => {
			// Only the current FFmpeg is restarted; one replaced by a reopen is not.
			if (this.#closed || this.#ffmpeg !== ffmpeg) return;
			this.#retry = setTimeout(() => {
				if (this.#closed || this.#ffmpeg !== ffmpeg) return;
				void this.#startFfmpeg().catch((error: unknown) => this.#log.error({ err: error }, 'demo source did not restart'));
			}, RETRY_MS);
		});
		await ffmpeg.start();
	}

	/** Stops FFmpeg and listening to the broadcast (the broadcast is the relay's to close). Idempotent. */
	async close(): Promise<void> {
		if (this.#closed) return;
		this.#closed = true;
		clearTimeout(this.#retry);
		this.#broadcast.off('sourceclosed', this.#onSourceLost);
		this.#broadcast.off('rebuilt', this.#onSourceLost);
		await this.#queue;
		await this.#ffmpeg?.close();
	}
}
