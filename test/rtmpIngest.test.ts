import { afterEach, describe, expect, it } from 'vitest';
import type { LiveIngest } from '../src/ingest/live/LiveIngest.js';
import type { RtmpServer } from '../src/ingest/rtmp/RtmpServer.js';
import { useRelayFixture } from './helpers/fixture.js';
import { FfmpegPublisher, liveIngestFor, rtmpServerFor, STREAM_KEY } from './helpers/liveIngest.js';

describe('RTMP ingest', () => {
	const fixture = useRelayFixture();
	const owned: { servers: RtmpServer[]; ingests: LiveIngest[]; publishers: FfmpegPublisher[] } = { servers: [], ingests: [], publishers: [] };
	afterEach(async () => {
		await Promise.all(owned.publishers.splice(0).map((p) => p.stop()));
		await Promise.all(owned.servers.splice(0).map((s) => s.close()));
		for (const live of owned.ingests.splice(0)) live.close();
	});

	async function setUp(graceMs?: number) {
		const relay = await fixture.relay();
		const live = liveIngestFor(relay, { graceMs });
		owned.ingests.push(live);
		const server = await rtmpServerFor(live);
		owned.servers.push(server);
		return { relay, live, server };
	}

	function publish(url: string, options?: Parameters<typeof FfmpegPublisher.rtmp>[1]): FfmpegPublisher {
		const publisher = FfmpegPublisher.rtmp(url, options);
		owned.publishers.push(publisher);
		return publisher;
	}

	it('FFmpeg publishes H264/AAC; a werift viewer gets video and Opus audio; the publisher is never asked for a keyframe', async () => {
		const { relay, live, server } = await setUp();
		const publisher = publish(`rtmp://127.0.0.1:${server.port}/live/keynote?key=${STREAM_KEY}`);
		await waitUntil(() => relay.broadcasts.get('keynote')?.live === true, 15_000, 'broadcast live');
		const liveAt = performance.now();
		const broadcast = relay.broadcasts.get('keynote')!;
		const viewer = await fixture.viewer(broadcast);
		await viewer.waitFor(() => viewer.frames > 0, 15_000, 'first frame');
		const firstFrameAt = performance.now();
		await viewer.waitFor(() => viewer.frames >= 30 && viewer.audioPackets >= 50, 15_000, 'frames and audio');
		console.log(`RTMP publish to live: ${Math.round(liveAt - publisher.startedAt)} ms; publish to first frame at a viewer that joined then: ${Math.round(firstFrameAt - publisher.startedAt)} ms`);
		const feed = live.feed('keynote')!;
		console.log('RTMP feed', feed.stats, 'keyframe requests', broadcast.stats.keyframeRequests, 'engine upstream', broadcast.reencoder('video')!.stats.upstreamKeyframeRequests);
		expect(feed.stats.videoFramesSent).toBeGreaterThan(0);
		expect(feed.stats.audioPacketsSent).toBeGreaterThan(0);
		expect(viewer.decodableFrameTimes.length).toBeGreaterThan(20);
		expect(broadcast.reencoder('video')!.stats.upstreamKeyframeRequests).toBe(0);
		expect(broadcast.stats.keyframeRequests.forwardedUpstream).toBe(0);
	});
});

async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
	const deadline = performance.now() + timeoutMs;
	while (!predicate()) {
		if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}
