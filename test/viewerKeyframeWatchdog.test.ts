import { describe, expect, it } from 'vitest';
import { ensureClip } from '../src/harness/fixtures.js';
import { SyntheticBroadcaster } from '../src/harness/SyntheticBroadcaster.js';
import { sleep, useRelayFixture } from './helpers/fixture.js';

const clip = { width: 320, height: 180, fps: 15, seconds: 30, bitrateKbps: 200 } as const;

/**
 * A viewer whose keyframe requests come to nothing (issue 8 §6). mediasoup asks
 * the broadcaster once when the viewer connects and retries once; when both are
 * lost, the viewer used to wait for the broadcaster's next own keyframe, here a
 * 30 s GOP away. The relay now asks again for a viewer that is connected and has
 * had no video for a GOP and a second.
 */
describe('a connected viewer without a keyframe', () => {
	const fixture = useRelayFixture();

	it('gets a new keyframe request after a GOP and a bit, and video, when the first requests are lost', async () => {
		const relay = await fixture.relay();
		// Baseline mode: keyframe requests reach the broadcaster, which can lose them.
		const broadcast = await relay.createBroadcast({ id: 'lost-pli', mode: 'baseline', video: { keyframeIntervalSeconds: 1 } });
		const broadcaster = new SyntheticBroadcaster({ clip: ensureClip(clip), fps: clip.fps });
		try {
			await broadcaster.connect(async (offer) => (await broadcast.publish(offer)).answer);
			broadcaster.start();
			// Past the clip's only own keyframe (frame 0).
			await sleep(1500);
			const requestsBefore = broadcaster.keyframeRequests;
			// Every request mediasoup makes for the join (the pipe's, the viewer's, its retry) is lost.
			broadcaster.ignoreKeyframeRequests = 3;
			const viewer = await fixture.viewer(broadcast, { audio: false });
			await viewer.waitFor(() => viewer.keyframeTimes.length > 0 && viewer.frames > 5, 8000, 'video after lost keyframe requests');
			console.log(`keyframe requests during the join: ${broadcaster.keyframeRequests - requestsBefore}, first keyframe after ${viewer.timeToFirstFrame.toFixed(0)} ms`);
			expect(broadcaster.ignoreKeyframeRequests).toBe(0);
			expect(broadcaster.keyframeRequests - requestsBefore).toBeGreaterThan(3);
			expect(broadcaster.requestedKeyframesSent).toBeGreaterThan(0);
		} finally {
			await broadcaster.close();
		}
	});
});
