import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useServiceFixture } from './helpers/service.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const INGEST = 'browser-ingest-token';

describe('web pages in headless Chromium', () => {
	const start = useServiceFixture();
	let browser: Browser;

	beforeAll(async () => {
		browser = await chromium.launch({
			executablePath: CHROMIUM,
			args: [
				'--no-sandbox',
				'--disable-gpu',
				'--disable-background-networking',
				'--disable-component-update',
				'--no-first-run',
				'--disable-quic',
				'--disable-sync',
				// A fake camera and microphone, granted without a prompt.
				'--use-fake-device-for-media-stream',
				'--use-fake-ui-for-media-stream',
			],
		});
	});

	afterAll(async () => {
		await browser?.close();
	});

	it('a page publishes a fake camera over WHIP, another plays it over WHEP and decodes frames, the dashboard shows the viewer', async () => {
		const service = await start({
			ingestTokens: [INGEST],
			relay: { broadcastDefaults: { video: { width: 640, height: 360, fps: 30, bitrateKbps: 800, keyframeIntervalSeconds: 1 } } },
		});
		const context = await browser.newContext();
		try {
			const publisher = await context.newPage();
			await publisher.goto(`${service.url}/publish/browser?autostart=1&token=${INGEST}`);
			await publisher.waitForFunction(() => (window as unknown as { publisher?: { state: string } }).publisher?.state === 'live', undefined, { timeout: 20_000 });
			const broadcast = service.relay.broadcast('browser');
			expect(broadcast.source('video')).toBeDefined();
			expect(broadcast.reencoder('video')?.stats.running).toBe(true);

			const player = await context.newPage();
			await player.goto(`${service.url}/watch/browser`);
			await player.waitForFunction(() => ((window as unknown as { player?: { framesDecoded: number } }).player?.framesDecoded ?? 0) > 30, undefined, {
				timeout: 30_000,
			});
			const decoded = await player.evaluate(() => (window as unknown as { player: { framesDecoded: number } }).player.framesDecoded);
			await player.waitForTimeout(1500);
			const later = await player.evaluate(() => (window as unknown as { player: { framesDecoded: number } }).player.framesDecoded);
			console.log(`Chromium decoded ${decoded} frames, then ${later - decoded} more in 1.5 s`);
			expect(later).toBeGreaterThan(decoded + 15);

			const dashboard = await context.newPage();
			await dashboard.goto(`${service.url}/`);
			const viewersCell = dashboard.locator('[data-broadcast="browser"] .viewers');
			await expect.poll(async () => (await viewersCell.textContent())?.trim(), { timeout: 10_000 }).toBe('1');
			const placement = [...broadcast.viewers.values()][0]!.placement.workerIndex;
			const workerConsumers = dashboard.locator(`[data-worker="${placement}"] .consumers`);
			await expect.poll(async () => Number((await workerConsumers.textContent())?.trim()), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
		} finally {
			await context.close();
		}
	});

	it('a publisher that stops and publishes again: new viewers decode the new stream', async () => {
		const service = await start({
			ingestTokens: [INGEST],
			relay: { broadcastDefaults: { video: { width: 640, height: 360, fps: 30, bitrateKbps: 800, keyframeIntervalSeconds: 1 } } },
		});
		const context = await browser.newContext();
		try {
			const publisher = await context.newPage();
			const publishUrl = `${service.url}/publish/again?autostart=1&token=${INGEST}`;
			const live = () =>
				publisher.waitForFunction(() => (window as unknown as { publisher?: { state: string } }).publisher?.state === 'live', undefined, { timeout: 20_000 });
			await publisher.goto(publishUrl);
			await live();
			await publisher.click('text=Stop');
			await expect.poll(() => service.relay.broadcast('again').source('video'), { timeout: 5000 }).toBeUndefined();
			await publisher.goto(publishUrl);
			await live();

			const player = await context.newPage();
			await player.goto(`${service.url}/watch/again`);
			await player.waitForFunction(() => ((window as unknown as { player?: { framesDecoded: number } }).player?.framesDecoded ?? 0) > 30, undefined, {
				timeout: 30_000,
			});
		} finally {
			await context.close();
		}
	});
});
