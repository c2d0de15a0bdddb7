import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useServiceFixture } from './helpers/service.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ADMIN = 'admin-token-for-pages';

describe('pages keep tokens out of their address (headless Chromium)', () => {
	const start = useServiceFixture();
	let browser: Browser;

	beforeAll(async () => {
		browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
	});

	afterAll(async () => {
		await browser?.close();
	});

	it('a ?token= is taken out of the address at once and kept in the browser; the dashboard takes a typed token', async () => {
		const service = await start({ adminTokens: [ADMIN] });
		const context = await browser.newContext();
		try {
			const page = await context.newPage();
			const response = await page.goto(`${service.url}/?token=${ADMIN}&x=1`);
			expect(response!.headers()['referrer-policy']).toBe('no-referrer');
			await expect.poll(() => page.url()).toBe(`${service.url}/?x=1`);
			expect(await page.evaluate(() => localStorage.getItem('broadcast-relay-token'))).toBe(ADMIN);
			await expect.poll(() => page.textContent('#readiness'), { timeout: 10_000 }).toBe('ready');

			// A fresh browser without the token: the dashboard asks for it and works once it is typed in.
			const fresh = await browser.newContext();
			try {
				const dashboard = await fresh.newPage();
				await dashboard.goto(`${service.url}/`);
				await dashboard.waitForSelector('#token-form:not([hidden])', { timeout: 10_000 });
				await dashboard.fill('#token-input', ADMIN);
				await dashboard.click('#token-form button');
				await expect.poll(() => dashboard.textContent('#readiness'), { timeout: 10_000 }).toBe('ready');
				expect(dashboard.url()).not.toContain(ADMIN);
			} finally {
				await fresh.close();
			}
		} finally {
			await context.close();
		}
	});
});
