import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { describe, expect, it } from 'vitest';
import { useRelayFixture } from './helpers/fixture.js';

/** An offer sending audio first, then VP8 video, as Chromium's publish page and OBS order them. */
async function audioFirstOffer(): Promise<{ pc: RTCPeerConnection; sdp: string }> {
	const pc = new RTCPeerConnection({
		codecs: {
			audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })],
			video: [new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, payloadType: 96, rtcpFeedback: [{ type: 'nack', parameter: 'pli' }] })],
		},
	});
	pc.addTransceiver('audio', { direction: 'sendonly' });
	pc.addTransceiver('video', { direction: 'sendonly' });
	await pc.setLocalDescription(await pc.createOffer());
	return { pc, sdp: pc.localDescription!.sdp };
}

/**
 * Issue 8 §5: while a publish was being set up, the audio track (passed through)
 * was published before the video re-encoder had started, and `live` said yes: a
 * WHEP viewer joining then got an audio-only session for good. A broadcast is
 * live for playback only once every track it will have is published.
 */
describe('live for playback', () => {
	const fixture = useRelayFixture();

	it('is false until every track of a publication is published, then true', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'live-when-ready' });
		const { pc, sdp } = await audioFirstOffer();
		try {
			const seen: Array<{ live: boolean; kinds: string[] }> = [];
			let settled = false;
			const publishing = broadcast.publish(sdp).finally(() => {
				settled = true;
			});
			// Sample every event-loop turn while the publication is set up.
			while (!settled) {
				seen.push({ live: broadcast.live, kinds: broadcast.fanOut.tracks.map((t) => t.kind).sort() });
				await new Promise((resolve) => setImmediate(resolve));
			}
			const publication = await publishing;
			const audioOnlyMoments = seen.filter((s) => s.kinds.length === 1 && s.kinds[0] === 'audio');
			console.log(`${seen.length} samples while publishing, ${audioOnlyMoments.length} with audio published and video not yet`);
			// The window existed (audio first, video's re-encoder starting)…
			expect(audioOnlyMoments.length).toBeGreaterThan(0);
			// …and the broadcast never said live in it.
			expect(seen.filter((s) => s.live)).toEqual([]);
			expect(broadcast.live).toBe(true);
			expect(broadcast.fanOut.tracks.map((t) => t.kind).sort()).toEqual(['audio', 'video']);
			publication.close();
		} finally {
			await pc.close();
		}
	});
});
