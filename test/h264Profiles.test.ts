/**
 * Issue 8 §5: GStreamer's x264enc and openh264enc offer H264 with
 * profile-level-id 42c0xx (Constrained Baseline, spelt with constraint_set0+1),
 * and the relay answered 422 because it took only ids starting 42e0 or 4240.
 * A real WHIP publish of 42c01f H264 must go live and be re-encoded; Constrained
 * High (640c1f) is refused with the reason.
 */
import { describe, expect, it } from 'vitest';
import { sleep } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 };

describe('H264 profiles over WHIP', () => {
	const start = useServiceFixture();

	it('a publisher offering H264 42c01f (GStreamer\'s Constrained Baseline) goes live and its video is re-encoded', async () => {
		const service = await start({ relay: { workers: 1 } });
		const publisher = new WeriftPublisher({ ...video, codec: 'H264', audio: false });
		try {
			let offered = '';
			await publisher.connect(async (offer) => {
				offered = offer.replaceAll('profile-level-id=42e01f', 'profile-level-id=42c01f');
				const response = await postSdp(`${service.url}/whip/gst`, offered);
				const body = await response.text();
				expect(response.status, body).toBe(201);
				// mediasoup answers the same profile in its canonical spelling (42e01f), as RFC 6184 allows.
				expect(body).toMatch(/a=fmtp:\d+ .*profile-level-id=42[ec]01f/);
				return body;
			});
			expect(offered).toContain('profile-level-id=42c01f');
			const broadcast = service.relay.broadcast('gst');
			const deadline = performance.now() + 20_000;
			while (!((broadcast.reencoder('video')?.stats.framesEncoded ?? 0) > 10) && performance.now() < deadline) await sleep(200);
			expect(broadcast.reencoder('video')?.stats.framesEncoded, 'frames FFmpeg made from the 42c01f stream').toBeGreaterThan(10);
		} finally {
			await publisher.close();
		}
	}, 60_000);

	it('a publisher offering only H264 Constrained High (640c1f) gets 422 that says so', async () => {
		const service = await start({ relay: { workers: 1 } });
		const publisher = new WeriftPublisher({ ...video, codec: 'H264', audio: false });
		try {
			let status = 0;
			let body = '';
			await publisher
				.connect(async (offer) => {
					const response = await postSdp(`${service.url}/whip/high`, offer.replaceAll('profile-level-id=42e01f', 'profile-level-id=640c1f'));
					status = response.status;
					body = await response.text();
					throw new Error('refused');
				})
				.catch(() => undefined);
			expect(status).toBe(422);
			expect(body).toMatch(/640c1f is Constrained High/);
			expect(service.relay.broadcasts.has('high')).toBe(false);
		} finally {
			await publisher.close();
		}
	}, 60_000);
});
