/**
 * RTMP and SRT publishers onto broadcasts: checks a publish (broadcast id,
 * stream key), finds or opens the broadcast's LiveFeed, and turns the
 * publisher's FLV tags into media for it. One feed per broadcast outlives its
 * publishers by the grace period, so a publisher that reconnects in time
 * continues the same broadcast.
 */
import type { Broadcast } from '../../Broadcast.js';
import type { Logger } from '../../logger.js';
import { PublishRefusedError, type LiveSink, type RtmpPublishRequest } from '../rtmp/RtmpSession.js';
import { rtmpTarget } from '../rtmp/streamName.js';
import { srtTarget } from '../srt/streamId.js';
import { FlvMediaParser } from './flv.js';
import { LiveFeed, type FeedPublisher } from './LiveFeed.js';

export type LiveProtocol = 'rtmp' | 'srt';

export interface LivePublishRequest {
	protocol: LiveProtocol;
	broadcastId: string;
	/** The stream key the publisher gave, if any. */
	key: string | undefined;
	/** Where it connects from (for the log). */
	remote: string;
	/** Ends the publisher's connection (it was replaced, its media was refused, or the feed ended). */
	disconnect(reason: string): void;
}

export interface LiveIngestOptions {
	/**
	 * Finds (or creates) broadcast `id` and runs `use` on it, telling it whether
	 * the broadcast was created for this publish; such a broadcast must be closed
	 * again when `use` throws. Throws to refuse.
	 */
	withBroadcast<T>(id: string, use: (broadcast: Broadcast, created: boolean) => Promise<T>): Promise<T>;
	/** Throws PublishRefusedError when the key does not allow publishing to the broadcast. */
	authorize(request: { protocol: LiveProtocol; broadcastId: string; key: string | undefined }): void | Promise<void>;
	/** Address this process sends the broadcast's RTP ingest to (the relay's listen IP; loopback for a wildcard). */
	host: string;
	/** How long a dropped publisher has to come back to the same broadcast, ms. */
	graceMs: number;
	/** A publisher that has sent no media this long gives way to a new publish of its broadcast, ms; until then the new one is refused. */
	silentPublisherMs: number;
	/** Opus bitrate for the transcoded AAC, kbit/s. */
	audioBitrateKbps: number;
	logger: Logger;
}

const BROADCAST_ID = /^[A-Za-z0-9_-]{1,64}$/;

export class LiveIngest {
	readonly #options: LiveIngestOptions;
	readonly #logger: Logger;
	readonly #feeds = new Map<string, LiveFeed>();
	readonly #opening = new Map<string, Promise<LiveFeed>>();
	#closed = false;

	constructor(options: LiveIngestOptions) {
		this.#options = options;
		this.#logger = options.logger.child({ module: 'LiveIngest' });
	}

	/** The live feed of a broadcast, while it has one. */
	feed(broadcastId: string): LiveFeed | undefined {
		return this.#feeds.get(broadcastId);
	}

	get feeds(): ReadonlyMap<string, LiveFeed> {
		return this.#feeds;
	}

	/** Takes a publisher onto its broadcast; resolves with the sink for its FLV tags, or rejects with PublishRefusedError. */
	async publish(request: LivePublishRequest): Promise<LiveSink> {
		const { protocol, broadcastId } = request;
		if (this.#closed) throw new PublishRefusedError('the relay is shutting down', 'NetStream.Publish.Failed');
		if (!BROADCAST_ID.test(broadcastId)) {
			throw new PublishRefusedError(`"${broadcastId.slice(0, 80)}" is not a broadcast id (1-64 letters, digits, "-" or "_")`);
		}
		await this.#options.authorize({ protocol, broadcastId, key: request.key });
		const feed = await this.#feedFor(broadcastId);
		const current = feed.publisher;
		const silentFor = feed.lastMediaAt === undefined ? Infinity : performance.now() - feed.lastMediaAt;
		if (current && silentFor < this.#options.silentPublisherMs) {
			throw new PublishRefusedError(`broadcast "${broadcastId}" already has a publisher (${current.label}) that is sending; stop it first`, 'NetStream.Publish.BadName');
		}
		const publisher = new LivePublisher(feed, request, this.#logger);
		feed.attach(publisher);
		return publisher;
	}

	/** An RTMP publish (see rtmpTarget for how it names its broadcast and key). */
	publishRtmp(request: RtmpPublishRequest): Promise<LiveSink> {
		const target = rtmpTarget(request.app, request.streamName, request.query);
		if ('error' in target) return Promise.reject(new PublishRefusedError(target.error));
		return this.publish({ protocol: 'rtmp', ...target, remote: request.remoteAddress, disconnect: request.disconnect });
	}

	/** An SRT caller, by its streamid (see srtTarget). */
	publishSrt(request: { streamId: string; remote: string; disconnect(reason: string): void }): Promise<LiveSink> {
		const target = srtTarget(request.streamId);
		if ('error' in target) return Promise.reject(new PublishRefusedError(target.error));
		return this.publish({ protocol: 'srt', ...target, remote: request.remote, disconnect: request.disconnect });
	}

	async #feedFor(broadcastId: string): Promise<LiveFeed> {
		const existing = this.#feeds.get(broadcastId);
		if (existing && !existing.closed) return existing;
		const inFlight = this.#opening.get(broadcastId);
		if (inFlight) return inFlight;
		const opening = this.#options.withBroadcast(broadcastId, async (broadcast, created) => {
			if (broadcast.options.mode !== 'relay') {
				throw new PublishRefusedError(`broadcast "${broadcastId}" is in ${broadcast.options.mode} mode; RTMP and SRT need a re-encoded (relay mode) broadcast`);
			}
			const feed = await LiveFeed.open({ broadcast, host: this.#options.host, graceMs: this.#options.graceMs, audioBitrateKbps: this.#options.audioBitrateKbps, logger: this.#options.logger });
			if (created) {
				// A broadcast made for a publisher whose media never went out (refused codec, gone before its first
				// keyframe) is not left behind; one that was live stays, as after a WHIP publisher leaves.
				feed.once('@close', ({ reason }) => {
					if (feed.stats.videoFramesSent > 0 || broadcast.closed) return;
					this.#logger.info({ broadcastId, reason }, 'closing the broadcast created for a publisher that sent no video');
					void broadcast.close();
				});
			}
			return feed;
		});
		this.#opening.set(broadcastId, opening);
		try {
			const feed = await opening;
			if (this.#closed) {
				feed.close('the relay is shutting down');
				throw new PublishRefusedError('the relay is shutting down', 'NetStream.Publish.Failed');
			}
			this.#feeds.set(broadcastId, feed);
			feed.once('@close', () => {
				if (this.#feeds.get(broadcastId) === feed) this.#feeds.delete(broadcastId);
			});
			return feed;
		} catch (error) {
			if (error instanceof PublishRefusedError) throw error;
			// ConflictError (a WHIP publisher holds it), CapacityExceededError…: their messages say what to do.
			throw new PublishRefusedError(`broadcast "${broadcastId}" cannot take this publisher: ${(error as Error).message}`, 'NetStream.Publish.Failed');
		} finally {
			this.#opening.delete(broadcastId);
		}
	}

	/** Ends every feed (and so disconnects its publisher). Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const feed of [...this.#feeds.values()]) feed.close('the relay is shutting down');
		this.#feeds.clear();
	}
}

/** One publisher's connection as its feed sees it, and as its session's sink. */
class LivePublisher implements LiveSink, FeedPublisher {
	readonly label: string;
	readonly #feed: LiveFeed;
	readonly #request: LivePublishRequest;
	readonly #logger: Logger;
	readonly #parser = new FlvMediaParser();
	#warnedReorder = false;

	constructor(feed: LiveFeed, request: LivePublishRequest, logger: Logger) {
		this.#feed = feed;
		this.#request = request;
		this.label = `${request.protocol} ${request.remote}`;
		this.#logger = logger.child({ broadcastId: request.broadcastId, publisher: this.label });
	}

	tag(type: number, timestampMs: number, body: Buffer): void {
		let media;
		try {
			media = this.#parser.parse(type, timestampMs, body);
		} catch (error) {
			// Refused media: the session closes with this message. A feed that never carried video has nothing to wait for.
			if (this.#feed.publisher === this && this.#feed.stats.videoFramesSent === 0) this.#feed.close(`the publisher's media was refused: ${(error as Error).message}`);
			throw error;
		}
		if (!media) return;
		if (!this.#warnedReorder && this.#parser.reorders) {
			this.#warnedReorder = true;
			this.#logger.info('the publisher sends B-frames (frames out of display order); the re-encoder decodes them, at a frame or two of added latency');
		}
		this.#feed.push(this, media);
	}

	end(reason: string): void {
		this.#feed.detach(this, reason);
	}

	disconnect(reason: string): void {
		this.#request.disconnect(reason);
	}
}
