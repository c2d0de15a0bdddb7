import { createSocket } from 'node:dgram';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useRelayFixture } from './helpers/fixture.js';
import { assertGstreamerAvailable, GstVp8Sender } from './helpers/gstreamer.js';

/**
 * Issue 8 §5: VP8 whose payload descriptors have no extended control bits (no
 * picture ID), as GStreamer's rtpvp8pay sends by default. mediasoup 3.12.16's
 * worker parsed none of it, saw no keyframe and dropped every packet, so the
 * re-encoder never made a frame. The worker build carries the fix as a patch
 * (scripts/mediasoup-worker/patches/); these tests fail on an unpatched worker.
 */
describe('VP8 without picture ID (GStreamer rtpvp8pay, picture-id-mode=none)', () => {
	const fixture = useRelayFixture();
	const senders: GstVp8Sender[] = [];
	const SSRC = 0x47535401;
	const PT = 96;

	beforeAll(() => assertGstreamerAvailable());

	afterEach(async () => {
		await Promise.all(senders.splice(0).map((s) => s.close()));
	});

	async function startSender(host: string, port: number, frames?: number): Promise<GstVp8Sender> {
		const sender = new GstVp8Sender({ host, port, ssrc: SSRC, payloadType: PT, ...(frames !== undefined ? { frames } : {}) });
		senders.push(sender);
		await sender.start();
		return sender;
	}

	it('the sender really sends descriptors with the X bit clear, keyframes marked by the P bit', async () => {
		const socket = createSocket('udp4');
		const payloads: Buffer[] = [];
		socket.on('message', (packet) => {
			const csrcCount = packet[0]! & 0x0f;
			const hasExtension = (packet[0]! & 0x10) !== 0;
			let offset = 12 + 4 * csrcCount;
			if (hasExtension) offset += 4 + 4 * packet.readUInt16BE(offset + 2);
			payloads.push(packet.subarray(offset));
		});
		await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
		try {
			const sender = await startSender('127.0.0.1', socket.address().port, 20);
			const code = await sender.exited();
			expect(code, sender.stderr).toBe(0);
			await new Promise((resolve) => setTimeout(resolve, 100));
		} finally {
			socket.close();
		}
		expect(payloads.length).toBeGreaterThanOrEqual(20);
		for (const payload of payloads) expect(payload[0]! & 0x80, 'X bit').toBe(0);
		// The first packet starts partition 0 of the first frame, a keyframe: S set, PID 0, P bit 0.
		expect(payloads[0]![0]! & 0x17).toBe(0x10);
		expect(payloads[0]![1]! & 0x01).toBe(0);
	});

	it('relay mode: the re-encoder makes frames and a werift viewer receives them', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({
			id: 'gst-vp8-relay',
			video: { width: 320, height: 240, fps: 15, bitrateKbps: 300, keyframeIntervalSeconds: 1 },
		});
		const [endpoint] = await broadcast.ingestRtp({ codec: 'VP8', payloadType: PT, ssrc: SSRC });
		const sender = await startSender(endpoint!.ip, endpoint!.port);
		const viewer = await fixture.viewer(broadcast, { audio: false });
		await viewer.waitForFrames(15, 15_000).catch((error: unknown) => {
			throw new Error(`${String(error)}; re-encoder ${JSON.stringify(broadcast.reencoder('video')?.stats)}; gst: ${sender.stderr}`);
		});
		expect(viewer.keyframeTimes.length).toBeGreaterThanOrEqual(1);
		expect(broadcast.reencoder('video')!.stats.running).toBe(true);
	});

	it('baseline mode: a werift viewer receives the broadcaster stream as is', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'gst-vp8-baseline', mode: 'baseline' });
		const [endpoint] = await broadcast.ingestRtp({ codec: 'VP8', payloadType: PT, ssrc: SSRC });
		await startSender(endpoint!.ip, endpoint!.port);
		const viewer = await fixture.viewer(broadcast, { audio: false });
		await viewer.waitForFrames(15, 15_000);
		expect(viewer.keyframeTimes.length).toBeGreaterThanOrEqual(1);
	});
});
