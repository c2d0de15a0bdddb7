import { createSocket, type Socket } from 'node:dgram';
import * as mediasoup from 'mediasoup';
import { describe, expect, it } from 'vitest';
import {
	ClosedError,
	ConflictError,
	createRelay,
	FfmpegNotFoundError,
	InvalidOptionError,
	InvalidRtpParametersError,
	InvalidSdpError,
	NotFoundError,
	PortRangeExhaustedError,
	ProducerClosedError,
	UnsupportedCodecError,
	type Relay,
} from '../src/index.js';
import { mediaChildren, useRelayFixture } from './helpers/fixture.js';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';

const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 } as const;

/** What a failed call must not leave behind: FFmpeg children, lent ports, routers beyond the broadcasts' own two. */
async function expectNothingLeaked(relay: Relay, routersAllowed: number): Promise<void> {
	expect(mediaChildren()).toEqual([]);
	expect(relay.ports.inUse).toBe(0);
	let routers = 0;
	for (const slot of relay.pool.slots) routers += (await slot.worker.dump()).routerIds.length;
	expect(routers).toBe(routersAllowed);
}

/** Transports on the broadcasts' ingest and encoder routers. */
async function transportCount(relay: Relay): Promise<number> {
	let count = 0;
	for (const broadcast of relay.broadcasts.values()) {
		for (const router of [broadcast.ingestRouter, broadcast.encoderRouter]) {
			const dump = await router.dump();
			count += dump.transportIds.length;
		}
	}
	return count;
}

describe('bad input: typed errors, nothing leaked', () => {
	const fixture = useRelayFixture();

	it('unknown or unsupported codec in an RTP ingest', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'codec' });
		await expect(broadcast.ingestRtp({ codec: 'VP9', payloadType: 98, ssrc: 1 })).rejects.toBeInstanceOf(UnsupportedCodecError);
		await expect(broadcast.ingestRtp({ codec: 'AV1', payloadType: 98, ssrc: 1 })).rejects.toThrow(/send VP8 or H264 video and Opus audio/);
		expect(await transportCount(relay)).toBe(0);
		await expectNothingLeaked(relay, 2);
	});

	it('malformed RTP parameters', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'params' });
		await expect(broadcast.ingestRtp({ codec: 'VP8', payloadType: 300, ssrc: 1 })).rejects.toBeInstanceOf(InvalidRtpParametersError);
		await expect(broadcast.ingestRtp({ codec: 'VP8', payloadType: 96, ssrc: -4 })).rejects.toThrow(/ssrc must be an integer/);
		await expect(broadcast.ingestRtp({ codec: 'VP8', payloadType: 96 } as never)).rejects.toBeInstanceOf(InvalidRtpParametersError);
		await expect(broadcast.ingestRtp({ sdp: 'v=0\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n' })).rejects.toThrow(/a=ssrc/);
		expect(await transportCount(relay)).toBe(0);
		await expectNothingLeaked(relay, 2);
	});

	it('malformed viewer SDP, SDP without video, and a viewer that cannot decode the codec', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'sdp', video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		await expect(broadcast.addViewer('hello')).rejects.toBeInstanceOf(InvalidSdpError);
		await expect(broadcast.addViewer('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n')).rejects.toThrow(/no m= sections/);
		const noFingerprint = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\na=mid:0\r\n';
		await expect(broadcast.addViewer(noFingerprint)).rejects.toThrow(/fingerprint/);

		const h264Only = new WeriftViewer({ codec: 'H264', audio: false });
		await expect(h264Only.connect(async (offer) => (await broadcast.addViewer(offer)).answer)).rejects.toBeInstanceOf(UnsupportedCodecError);
		await h264Only.close();

		expect(broadcast.viewers.size).toBe(0);
		expect(broadcast.stats.routers.every((r) => r.consumers === 0)).toBe(true);
		expect(relay.workerLoad().every((w) => w.consumers === 0)).toBe(true);
		// The relay keeps serving: a good viewer still gets video.
		const viewer = await fixture.viewer(broadcast, { audio: false });
		await viewer.waitForFrames(5);
	});

	it('missing FFmpeg binary fails at startup with the fix in the message', async () => {
		const attempt = createRelay({ workers: 1, ffmpegPath: '/nonexistent/ffmpeg' });
		await expect(attempt).rejects.toBeInstanceOf(FfmpegNotFoundError);
		await expect(createRelay({ workers: 1, ffmpegPath: '/nonexistent/ffmpeg' })).rejects.toThrow(/apt-get install ffmpeg/);
	});

	it('bad options name the option', async () => {
		await expect(createRelay({ workers: 0 })).rejects.toBeInstanceOf(InvalidOptionError);
		await expect(createRelay({ rtcMinPort: 50000, rtcMaxPort: 40000 })).rejects.toThrow(/rtcMinPort must be below rtcMaxPort/);
		const relay = await fixture.relay();
		await expect(relay.createBroadcast({ id: 'has spaces' })).rejects.toThrow(/id: use 1-64 letters/);
		await expect(relay.createBroadcast({ video: { keyframeIntervalSeconds: 0 } })).rejects.toBeInstanceOf(InvalidOptionError);
		await relay.createBroadcast({ id: 'twice' });
		await expect(relay.createBroadcast({ id: 'twice' })).rejects.toBeInstanceOf(ConflictError);
		expect(() => relay.broadcast('nope')).toThrow(NotFoundError);
	});

	it('exhausted FFmpeg port range: the broadcast reports it and holds nothing', async () => {
		const relay = await fixture.relay({ ffmpegMinPort: 51000, ffmpegMaxPort: 51003 });
		// Someone else holds one of the two pairs; the re-encoder needs two.
		const squatter: Socket = createSocket('udp4');
		await new Promise<void>((resolve) => squatter.bind(51002, '127.0.0.1', resolve));
		try {
			const broadcast = await relay.createBroadcast({ id: 'ports', video });
			const attempt = fixture.broadcaster(broadcast, { ...video, audio: false });
			await expect(attempt).rejects.toBeInstanceOf(PortRangeExhaustedError);
			await expect(fixture.broadcaster(broadcast, { ...video, audio: false })).rejects.toThrow(/widen ffmpegPorts/);
			expect(broadcast.source('video')).toBeUndefined();
			expect(await transportCount(relay)).toBe(0);
			await expectNothingLeaked(relay, 2);
		} finally {
			squatter.close();
		}
	});

	it('a producer that is closed, or closes under the re-encoder', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'closing-producer', video });
		const worker = await mediasoup.createWorker({ rtcMinPort: 52000, rtcMaxPort: 52100 });
		try {
			const router = await worker.createRouter({ mediaCodecs: [{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }] });
			const transport = await router.createPlainTransport({ listenIp: '127.0.0.1', comedia: true, rtcpMux: false });
			const rtpParameters = { codecs: [{ mimeType: 'video/VP8', payloadType: 100, clockRate: 90000 }], encodings: [{ ssrc: 1234 }] };
			const gone = await transport.produce({ kind: 'video', rtpParameters });
			gone.close();
			await expect(broadcast.attach({ producer: gone, router })).rejects.toBeInstanceOf(ProducerClosedError);

			const producer = await transport.produce({ kind: 'video', rtpParameters: { ...rtpParameters, encodings: [{ ssrc: 5678 }] } });
			await broadcast.attach({ producer, router });
			expect(broadcast.reencoder('video')?.stats.running).toBe(true);
			expect(mediaChildren()).toHaveLength(1);
			const closed = new Promise((resolve) => broadcast.once('sourceclosed', resolve));
			producer.close();
			expect(await closed).toEqual({ kind: 'video', reason: 'producer closed' });
			await new Promise((resolve) => setTimeout(resolve, 200));
			expect(broadcast.reencoder('video')).toBeUndefined();
			expect(mediaChildren()).toEqual([]);
			expect(relay.ports.inUse).toBe(0);
			expect(await transportCount(relay)).toBe(0);
		} finally {
			worker.close();
		}
	});

	it('methods on closed objects throw ClosedError; close() twice is safe', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'closed' });
		await broadcast.close();
		await broadcast.close();
		await expect(broadcast.ingestRtp({ codec: 'VP8', payloadType: 96, ssrc: 1 })).rejects.toBeInstanceOf(ClosedError);
		await relay.close();
		await relay.close();
		expect(relay.closed).toBe(true);
		await expect(relay.createBroadcast()).rejects.toBeInstanceOf(ClosedError);
	});
});
