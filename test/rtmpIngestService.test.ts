import { chromium, type Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadServiceConfig } from '../src/service/config.js';
import { useServiceFixture } from './helpers/service.js';
import { FfmpegPublisher, freeUdpPort, waitUntil } from './helpers/liveIngest.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const INGEST = 'live-ingest-token';
const SMALL = { width: 320, height: 180, fps: 15, bitrateKbps: 300, keyframeIntervalSeconds: 2 } as const;

describe('RTMP and SRT ingest in the service', () => {
	const start = useServiceFixture();
	const publishers: FfmpegPublisher[] = [];
	let browser: Browser;

	beforeAll(async () => {
		browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-quic', '--disable-sync'] });
	});
	afterAll(async () => {
		await browser?.close();
	});
	afterEach(async () => {
		await Promise.all(publishers.splice(0).map((p) => p.stop()));
	});

	it('FFmpeg publishes over RTMP with an ingest token as stream key; Chromium plays it on the watch page', async () => {
		const service = await start({ ingestTokens: [INGEST], rtmp: { enabled: true, port: 0 }, relay: { broadcastDefaults: { video: SMALL } } });
		const rtmp = service.liveIngest!.rtmp!;
		const publisher = FfmpegPublisher.rtmp(`rtmp://127.0.0.1:${rtmp.port}/live/chromium?key=${INGEST}`);
		publishers.push(publisher);
		await waitUntil(() => service.relay.broadcasts.get('chromium')?.live === true, 20_000, 'broadcast live');
		const liveAfter = performance.now() - publisher.startedAt;
		const context = await browser.newContext();
		try {
			const player = await context.newPage();
			await player.goto(`${service.url}/watch/chromium`);
			await player.waitForFunction(() => ((window as unknown as { player?: { framesDecoded: number } }).player?.framesDecoded ?? 0) > 0, undefined, { timeout: 30_000 });
			const firstFrame = performance.now() - publisher.startedAt;
			await player.waitForFunction(() => ((window as unknown as { player?: { framesDecoded: number } }).player?.framesDecoded ?? 0) > 30, undefined, { timeout: 30_000 });
			console.log(`RTMP → Chromium: publish to live ${Math.round(liveAfter)} ms, to the first frame decoded by a watch page opened then ${Math.round(firstFrame)} ms`);
		} finally {
			await context.close();
		}
		const broadcast = service.relay.broadcasts.get('chromium')!;
		expect(broadcast.stats.keyframeRequests.forwardedUpstream).toBe(0);
	});

	it('SRT through the service: an ingest token as key in the streamid, with a passphrase; a wrong token is refused', async () => {
		const port = await freeUdpPort();
		const service = await start({ ingestTokens: [INGEST], srt: { enabled: true, port, passphrase: 'service-srt-secret' }, relay: { broadcastDefaults: { video: SMALL } } });
		const wrong = FfmpegPublisher.srt(`srt://127.0.0.1:${port}?streamid=publish:srtsvc:not-a-token&passphrase=service-srt-secret`, { audio: false });
		publishers.push(wrong);
		await wrong.exited;
		expect(service.relay.broadcasts.has('srtsvc')).toBe(false);
		const good = FfmpegPublisher.srt(`srt://127.0.0.1:${port}?streamid=publish:srtsvc:${INGEST}&passphrase=service-srt-secret`);
		publishers.push(good);
		await waitUntil(() => service.relay.broadcasts.get('srtsvc')?.live === true, 20_000, 'broadcast live');
		expect(service.liveIngest!.live.feed('srtsvc')!.stats.publishing).toBe(true);
	});

	it('options come from the environment and are checked once', () => {
		const config = loadServiceConfig({ env: { BROADCAST_RELAY_RTMP: 'true', BROADCAST_RELAY_RTMP_PORT: '1936', BROADCAST_RELAY_SRT: 'true', BROADCAST_RELAY_SRT_PORT: '9000', BROADCAST_RELAY_SRT_PASSPHRASE: 'ten-chars-ok', BROADCAST_RELAY_LIVE_GRACE_MS: '5000' } });
		expect(config.rtmp).toEqual({ enabled: true, port: 1936 });
		expect(config.srt).toMatchObject({ enabled: true, port: 9000, passphrase: 'ten-chars-ok', latencyMs: 200 });
		expect(config.liveIngest.reconnectGraceMs).toBe(5000);
		expect(() => loadServiceConfig({ flags: { srt: { enabled: true, port: 40_500 } } })).toThrow(/srt\.port.*inside relay\.rtcMinPort/);
		expect(() => loadServiceConfig({ flags: { srt: { passphrase: 'short' } } })).toThrow(/10 to 79 characters/);
		expect(() => loadServiceConfig({ flags: { rtmp: { enabled: true, port: 8080 } } })).toThrow(/HTTP port/);
		expect(() => loadServiceConfig({ flags: { rtmp: { enabeld: true } } })).toThrow(/enabeld/);
	});
});
