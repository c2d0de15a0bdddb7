import { afterEach, describe, expect, it } from 'vitest';
import type { LiveIngest } from '../src/ingest/live/LiveIngest.js';
import type { SrtListener } from '../src/ingest/srt/SrtListener.js';
import { mediaChildren, useRelayFixture } from './helpers/fixture.js';
import { FfmpegPublisher, freeUdpPort, liveIngestFor, srtListenerFor, STREAM_KEY, waitUntil } from './helpers/liveIngest.js';

const PASSPHRASE = 'srt-test-passphrase';

describe('SRT ingest (listener mode, FFmpeg with libsrt)', () => {
	const fixture = useRelayFixture();
	const owned: { listeners: SrtListener[]; ingests: LiveIngest[]; publishers: FfmpegPublisher[] } = { listeners: [], ingests: [], publishers: [] };
	afterEach(async () => {
		await Promise.all(owned.publishers.splice(0).map((p) => p.stop()));
		await Promise.all(owned.listeners.splice(0).map((l) => l.close()));
		for (const live of owned.ingests.splice(0)) live.close();
	});

	async function setUp() {
		const relay = await fixture.relay();
		const live = liveIngestFor(relay);
		owned.ingests.push(live);
		const port = await freeUdpPort();
		const listener = await srtListenerFor(live, { port, passphrase: PASSPHRASE });
		owned.listeners.push(listener);
		return { relay, live, listener, port };
	}

	function publish(url: string): FfmpegPublisher {
		const publisher = FfmpegPublisher.srt(url);
		owned.publishers.push(publisher);
		return publisher;
	}

	it('FFmpeg publishes over SRT (streamid names the broadcast, passphrase); a werift viewer gets video and audio; no keyframe request upstream', async () => {
		const { relay, live, port } = await setUp();
		// As FFmpeg users write it (FFmpeg does not decode it); a percent-encoded one is read too (the other tests).
		const streamId = `#!::r=srtcast,m=publish,s=${STREAM_KEY}`;
		const publisher = publish(`srt://127.0.0.1:${port}?streamid=${streamId}&passphrase=${PASSPHRASE}`);
		await waitUntil(() => relay.broadcasts.get('srtcast')?.live === true, 20_000, 'broadcast live');
		const liveAt = performance.now();
		const broadcast = relay.broadcasts.get('srtcast')!;
		const viewer = await fixture.viewer(broadcast);
		await viewer.waitFor(() => viewer.frames > 0, 15_000, 'first frame');
		const firstFrameAt = performance.now();
		await viewer.waitFor(() => viewer.frames >= 30 && viewer.audioPackets >= 50, 15_000, 'frames and audio');
		console.log(`SRT publish to live: ${Math.round(liveAt - publisher.startedAt)} ms; publish to first frame at a viewer that joined then: ${Math.round(firstFrameAt - publisher.startedAt)} ms`);
		const feed = live.feed('srtcast')!;
		console.log('SRT feed', feed.stats, 'keyframe requests', broadcast.stats.keyframeRequests);
		expect(feed.stats.videoFramesSent).toBeGreaterThan(0);
		expect(feed.stats.audioPacketsSent).toBeGreaterThan(0);
		expect(viewer.decodableFrameTimes.length).toBeGreaterThan(20);
		expect(broadcast.reencoder('video')!.stats.upstreamKeyframeRequests).toBe(0);
		expect(broadcast.stats.keyframeRequests.forwardedUpstream).toBe(0);
	});

	it('a caller with a wrong key is refused (nothing created), one with a wrong passphrase never gets in; the listener takes the next caller', async () => {
		const { relay, listener, port } = await setUp();
		const wrongKey = publish(`srt://127.0.0.1:${port}?streamid=${encodeURIComponent('publish:srtcast:not-the-key')}&passphrase=${PASSPHRASE}`);
		await wrongKey.exited;
		expect(relay.broadcasts.has('srtcast')).toBe(false);
		expect(listener.callers).toBe(1);
		const wrongPassphrase = publish(`srt://127.0.0.1:${port}?streamid=${encodeURIComponent(`publish:srtcast:${STREAM_KEY}`)}&passphrase=another-passphrase&connect_timeout=2000`);
		expect(await wrongPassphrase.exited).not.toBe(0);
		expect(listener.callers).toBe(1);
		expect(relay.broadcasts.has('srtcast')).toBe(false);
		publish(`srt://127.0.0.1:${port}?streamid=${encodeURIComponent(`publish:srtcast:${STREAM_KEY}`)}&passphrase=${PASSPHRASE}`);
		await waitUntil(() => relay.broadcasts.get('srtcast')?.live === true, 20_000, 'broadcast live after the refusals');
		expect(mediaChildren().length).toBeGreaterThan(0);
	});
});
