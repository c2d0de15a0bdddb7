import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { chromium } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessPolicy } from '../src/auth/AccessPolicy.js';
import { mintToken, parseDuration } from '../src/auth/mintToken.js';
import { broadcastMatches, grants, readPermissions, type Permission } from '../src/auth/permissions.js';
import { ForbiddenError, InvalidOptionError, UnauthorizedError } from '../src/errors.js';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import { loadServiceConfig } from '../src/service/config.js';
import { startService } from '../src/service/Service.js';
import { postSdp, useServiceFixture } from './helpers/service.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

const SECRET = 'a-token-secret-of-at-least-32-characters!';
const OTHER_SECRET = 'another-secret-of-at-least-32-characters';
const ADMIN_STATIC = 'static-admin-token';
const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 };

const publish = (broadcast: string): Permission => ({ action: 'publish', broadcast });
const play = (broadcast: string): Permission => ({ action: 'play', broadcast });
const mint = (permissions: Permission[], extra: { ttlSeconds?: number; now?: number; secret?: string } = {}) =>
	mintToken({ secret: SECRET, permissions, ttlSeconds: 3600, audience: 'broadcast-relay', ...extra });

/** A real recvonly or sendonly-looking offer is not needed to be refused: auth comes first. A minimal valid offer is enough where auth passes. */
const OFFER = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';

describe('signed-token claims (pure)', () => {
	it('broadcast patterns match whole ids, * matches any run', () => {
		expect(broadcastMatches('keynote', 'keynote')).toBe(true);
		expect(broadcastMatches('keynote', 'keynote2')).toBe(false);
		expect(broadcastMatches('talk-*', 'talk-1')).toBe(true);
		expect(broadcastMatches('talk-*', 'xtalk-1')).toBe(false);
		expect(broadcastMatches('*', 'anything_at-all')).toBe(true);
		// Not a pattern of ids: never matches, rather than being read as a regular expression.
		expect(broadcastMatches('.*', 'x')).toBe(false);
	});

	it('reads permissions and refuses malformed claims', () => {
		expect(readPermissions({ broadcast_relay: [publish('a'), { action: 'admin', broadcast: 'ignored' }] })).toEqual({ permissions: [publish('a'), { action: 'admin' }] });
		expect(readPermissions({})).toEqual({ permissions: [] });
		expect(readPermissions({ broadcast_relay: 'publish' })).toHaveProperty('error');
		expect(readPermissions({ broadcast_relay: [{ action: 'delete', broadcast: 'a' }] })).toHaveProperty('error', expect.stringMatching(/action must be one of publish, play, admin/));
		expect(readPermissions({ broadcast_relay: [{ action: 'play' }] })).toHaveProperty('error', expect.stringMatching(/broadcast must be/));
	});

	it('grants only the action on the broadcasts named, and says what the token does grant', () => {
		expect(grants([publish('a')], { action: 'publish', broadcastId: 'a' })).toEqual({ granted: true });
		expect(grants([play('a')], { action: 'publish', broadcastId: 'a' })).toEqual({ granted: false, reason: expect.stringMatching(/does not grant publish "a" \(it grants play "a"\)/) });
		expect(grants([publish('a')], { action: 'publish', broadcastId: 'b' }).granted).toBe(false);
		expect(grants([publish('*')], { action: 'admin' }).granted).toBe(false);
		expect(grants([{ action: 'admin' }], { action: 'admin' }).granted).toBe(true);
	});

	it('durations', () => {
		expect(parseDuration('2h')).toBe(7200);
		expect(parseDuration('90s')).toBe(90);
		expect(parseDuration('30m')).toBe(1800);
		expect(parseDuration('7d')).toBe(604_800);
		expect(parseDuration('600')).toBe(600);
		expect(parseDuration('0')).toBeUndefined();
		expect(parseDuration('2 hours')).toBeUndefined();
	});
});

describe('signed tokens: configuration', () => {
	it('is validated once, with messages that say what to change', async () => {
		expect(() => loadServiceConfig({ flags: { signedTokens: { secret: 'short' } } })).toThrow(/at least 32 characters/);
		expect(() => loadServiceConfig({ flags: { signedTokens: { secret: SECRET, jwksFile: '/x' } } })).toThrow(/one of secret, jwksUrl and jwksFile/);
		expect(() => loadServiceConfig({ flags: { signedTokens: { jwksUrl: 'http://keys.example.com/jwks.json' } } })).toThrow(/must be https \(http only on loopback\)/);
		expect(loadServiceConfig({ flags: { signedTokens: { jwksUrl: 'http://127.0.0.1:9/jwks.json' } } }).signedTokens.jwksUrl).toBe('http://127.0.0.1:9/jwks.json');
		expect(() => loadServiceConfig({ flags: { playback: 'private' } })).toThrow(/playback/);
		const env = loadServiceConfig({ env: { BROADCAST_RELAY_TOKEN_SECRET: SECRET, BROADCAST_RELAY_PLAYBACK: 'token', BROADCAST_RELAY_TOKEN_ISSUER: 'ops' } });
		expect(env.signedTokens).toMatchObject({ secret: SECRET, issuer: 'ops', audience: 'broadcast-relay' });
		expect(env.playback).toBe('token');
		// Token-only playback without any way to check tokens would shut every viewer out.
		await expect(AccessPolicy.create(loadServiceConfig({ flags: { playback: 'token' } }))).rejects.toThrow(/playback "token" needs signed tokens/);
		// A JWKS file that is not there is found at start, before a worker is spawned.
		await expect(startService(loadServiceConfig({ flags: { port: 0, logLevel: 'silent', signedTokens: { jwksFile: '/nonexistent/jwks.json' } } }))).rejects.toThrow(
			/cannot read the JWKS file \/nonexistent\/jwks.json: ENOENT/,
		);
	});
});

describe('signed tokens: every route refuses bad tokens (real service)', () => {
	const start = useServiceFixture();

	it('expired, unsigned, wrong-signature, wrong-audience and exp-less tokens get 401; wrong broadcast, wrong action get 403; a good token passes', async () => {
		const service = await start({ adminTokens: [ADMIN_STATIC], playback: 'token', signedTokens: { secret: SECRET } });
		const base = service.url;
		// A broadcast to point the per-broadcast routes at.
		expect((await fetch(`${base}/api/broadcasts`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_STATIC}`, 'content-type': 'application/json' }, body: '{"id":"keynote"}' })).status).toBe(201);

		const hour = 3600;
		const invalid: Record<string, { token: (p: Permission[]) => Promise<string>; message: RegExp }> = {
			expired: { token: (p) => mint(p, { now: Date.now() - 2 * hour * 1000, ttlSeconds: hour }), message: /the token expired at .*; mint a new one/ },
			unsigned: { token: (p) => Promise.resolve(new UnsecuredJWT({ broadcast_relay: p }).setAudience('broadcast-relay').setExpirationTime('1h').encode()), message: /unsigned tokens \(alg "none"\) are never accepted/ },
			'wrong signature': { token: (p) => mint(p, { secret: OTHER_SECRET }), message: /signature does not verify with the configured secret/ },
			'wrong audience': {
				token: (p) => new SignJWT({ broadcast_relay: p }).setProtectedHeader({ alg: 'HS256' }).setAudience('another-app').setExpirationTime('1h').sign(new TextEncoder().encode(SECRET)),
				message: /its "aud" must be "broadcast-relay"/,
			},
			'no expiry': {
				token: (p) => new SignJWT({ broadcast_relay: p }).setProtectedHeader({ alg: 'HS256' }).setAudience('broadcast-relay').sign(new TextEncoder().encode(SECRET)),
				message: /no "exp" claim; tokens must expire/,
			},
			'not a JWT': { token: () => Promise.resolve('just-some-string'), message: /neither a configured bearer token nor a signed token/ },
		};

		type Route = { method: string; path: string; body?: string; type?: string; good: Permission[]; wrong: Record<string, Permission[]> };
		// A route, the token that passes it, and tokens that are valid but do not grant it.
		const kind =
			(good: Permission[], wrong: Record<string, Permission[]>) =>
			(method: string, path: string, body?: string, type?: string): Route => ({ method, path, body, type, good, wrong });
		const publishRoute = kind([publish('keynote')], {
			'play-only used to publish': [play('keynote')],
			'another broadcast': [publish('other')],
			'a pattern that does not match': [publish('key-*')],
		});
		const playRoute = kind([play('k*')], { 'publish-only used to play': [publish('keynote')], 'another broadcast': [play('other')] });
		const adminRoute = kind([{ action: 'admin' }], { 'publish and play are not admin': [publish('*'), play('*')] });
		const routes: Route[] = [
			publishRoute('POST', '/whip/keynote', OFFER, 'application/sdp'),
			publishRoute('PATCH', '/whip/keynote/sessions/nosuchsession', 'a=end-of-candidates\r\n', 'application/trickle-ice-sdpfrag'),
			publishRoute('DELETE', '/whip/keynote/sessions/nosuchsession'),
			playRoute('POST', '/whep/keynote', OFFER, 'application/sdp'),
			playRoute('PATCH', '/whep/keynote/sessions/nosuchsession', 'a=end-of-candidates\r\n', 'application/trickle-ice-sdpfrag'),
			playRoute('DELETE', '/whep/keynote/sessions/nosuchsession'),
			publishRoute('POST', '/api/broadcasts/keynote/rtp-ingest', '{}', 'application/json'),
			publishRoute('POST', '/api/broadcasts/keynote/pipe-ingest', '{}', 'application/json'),
			publishRoute('POST', '/api/broadcasts/keynote/pipe-ingest/nosuchsession/producers', '{}', 'application/json'),
			publishRoute('DELETE', '/api/broadcasts/keynote/pipe-ingest/nosuchsession'),
			adminRoute('GET', '/api/status'),
			adminRoute('GET', '/api/workers'),
			adminRoute('GET', '/api/broadcasts'),
			adminRoute('POST', '/api/broadcasts', '{"id": 5}', 'application/json'),
			adminRoute('GET', '/api/broadcasts/nosuchbroadcast'),
			adminRoute('DELETE', '/api/broadcasts/nosuchbroadcast'),
			adminRoute('GET', '/metrics'),
		];

		const send = (route: Route, token?: string) =>
			fetch(`${base}${route.path}`, {
				method: route.method,
				headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(route.type ? { 'content-type': route.type } : {}) },
				body: route.body,
			});
		let checked = 0;
		for (const route of routes) {
			const what = `${route.method} ${route.path}`;
			const none = await send(route);
			expect(none.status, `${what} without a token`).toBe(401);
			expect(none.headers.get('www-authenticate'), what).toMatch(/^Bearer realm="\w+", error_description="this route needs Authorization: Bearer <token>"$/);
			for (const [kind, { token, message }] of Object.entries(invalid)) {
				const response = await send(route, await token(route.good));
				expect(response.status, `${what} with a token that is ${kind}`).toBe(401);
				expect(await response.text(), `${what}: ${kind}`).toMatch(message);
				expect(response.headers.get('www-authenticate'), what).toMatch(/error="invalid_token"/);
				checked += 1;
			}
			for (const [kind, permissions] of Object.entries(route.wrong)) {
				const response = await send(route, await mint(permissions));
				expect(response.status, `${what}: ${kind}`).toBe(403);
				expect(await response.text(), `${what}: ${kind}`).toMatch(/^the token does not grant \w+.* \(it grants .*\); mint one that does$/);
				expect(response.headers.get('www-authenticate'), what).toMatch(/error="insufficient_scope"/);
				checked += 1;
			}
			// The right token gets past the check: what answers is the route itself (a bad body, no such session…).
			const good = await send(route, await mint(route.good));
			expect([401, 403], `${what} with a good token answered ${good.status}: ${await good.clone().text()}`).not.toContain(good.status);
			expect(good.status, what).toBeLessThan(500);
		}
		console.log(`${routes.length} routes, ${checked} refusals checked`);
		// Static tokens keep working beside signed ones.
		expect((await fetch(`${base}/api/status`, { headers: { authorization: `Bearer ${ADMIN_STATIC}` } })).status).toBe(200);
		// A header that is not a bearer token is told how to send one.
		const basic = await fetch(`${base}/api/status`, { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
		expect(basic.status).toBe(401);
		expect(await basic.text()).toBe('send the token as Authorization: Bearer <token>');
	});

	it('with public playback (the default) WHEP takes no token, while WHIP needs one as soon as signed tokens are configured', async () => {
		const service = await start({ signedTokens: { secret: SECRET } });
		const whep = await postSdp(`${service.url}/whep/nobody`, OFFER);
		expect(whep.status).not.toBe(401);
		expect((await postSdp(`${service.url}/whip/nobody`, OFFER)).status).toBe(401);
		expect((await fetch(`${service.url}/api/status`)).status).toBe(401);
	});

	it('the stream-key check (for RTMP/SRT) takes static ingest tokens and publish tokens for that broadcast only', async () => {
		const access = await AccessPolicy.create(loadServiceConfig({ flags: { ingestTokens: ['static-stream-key'], signedTokens: { secret: SECRET } } }));
		await expect(access.authorizeStreamKey('static-stream-key', 'keynote')).resolves.toBeUndefined();
		await expect(access.authorizeStreamKey(await mint([publish('keynote')]), 'keynote')).resolves.toMatchObject({ permissions: [publish('keynote')] });
		await expect(access.authorizeStreamKey(await mint([play('keynote')]), 'keynote')).rejects.toBeInstanceOf(ForbiddenError);
		await expect(access.authorizeStreamKey(await mint([publish('keynote')]), 'other')).rejects.toThrow(/does not grant publish "other"/);
		await expect(access.authorizeStreamKey('wrong-key', 'keynote')).rejects.toBeInstanceOf(UnauthorizedError);
		await expect(access.authorizeStreamKey(undefined, 'keynote')).rejects.toBeInstanceOf(UnauthorizedError);
		// With nothing configured ingest is open, as WHIP is.
		const open = await AccessPolicy.create(loadServiceConfig({}));
		await expect(open.authorizeStreamKey(undefined, 'keynote')).resolves.toBeUndefined();
	});
});

async function runToken(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
	const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'token', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BROADCAST_RELAY_TOKEN_SECRET: '', ...env } });
	let stdout = '';
	let stderr = '';
	child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
	child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
	const [code] = (await once(child, 'exit')) as [number];
	return { code, stdout, stderr };
}

async function cliToken(args: string[], env: Record<string, string>): Promise<string> {
	const { code, stdout, stderr } = await runToken(args, env);
	expect(code, stderr).toBe(0);
	expect(stderr).toMatch(/^grants .* until \d{4}-/);
	return stdout.trim();
}

describe('broadcast-relay token: usage errors are one line, exit 2', () => {
	it('no secret, a bad --ttl, nothing granted', async () => {
		const [noSecret, badTtl, nothing] = await Promise.all([
			runToken(['--publish', 'keynote'], {}),
			runToken(['--publish', 'keynote', '--ttl', '2 hours'], { BROADCAST_RELAY_TOKEN_SECRET: SECRET }),
			runToken([], { BROADCAST_RELAY_TOKEN_SECRET: SECRET }),
		]);
		expect(noSecret).toMatchObject({ code: 2, stdout: '', stderr: expect.stringMatching(/^broadcast-relay: no secret: set BROADCAST_RELAY_TOKEN_SECRET/) });
		expect(badTtl).toMatchObject({ code: 2, stderr: expect.stringMatching(/--ttl 2 hours is not a duration; give e.g. 90s, 30m, 2h or 7d/) });
		expect(nothing).toMatchObject({ code: 2, stderr: expect.stringMatching(/a token must grant something: give --publish <broadcast>, --play <broadcast> or --admin/) });
	});
});

describe('signed tokens: a token minted by the CLI works end to end', () => {
	const start = useServiceFixture();
	let publisher: WeriftPublisher | undefined;
	let viewer: WeriftViewer | undefined;
	afterEach(async () => {
		await viewer?.close();
		await publisher?.close();
	});

	it('werift publishes over WHIP with a --publish token, werift and a Chromium watch page play with a --play token (playback "token")', async () => {
		const service = await start({ playback: 'token', signedTokens: { secret: SECRET }, relay: { broadcastDefaults: { video } } });
		const env = { BROADCAST_RELAY_TOKEN_SECRET: SECRET };
		const [publishToken, playToken] = await Promise.all([cliToken(['--publish', 'keynote', '--ttl', '2h'], env), cliToken(['--play', 'key*', '--ttl', '10m'], env)]);

		publisher = new WeriftPublisher({ ...video });
		let whipLocation = '';
		await publisher.connect(async (offer) => {
			const response = await postSdp(`${service.url}/whip/keynote`, offer, { authorization: `Bearer ${publishToken}` });
			expect(response.status, await response.clone().text()).toBe(201);
			whipLocation = response.headers.get('location')!;
			return response.text();
		});
		await expect.poll(() => service.relay.broadcasts.get('keynote')?.live, { timeout: 15_000 }).toBe(true);

		// The publish token cannot play, the play token can.
		expect((await postSdp(`${service.url}/whep/keynote`, OFFER, { authorization: `Bearer ${publishToken}` })).status).toBe(403);
		viewer = new WeriftViewer({ audio: false });
		await viewer.connect(async (offer) => {
			const response = await postSdp(`${service.url}/whep/keynote`, offer, { authorization: `Bearer ${playToken}` });
			expect(response.status, await response.clone().text()).toBe(201);
			return response.text();
		});
		await viewer.waitForFrames(15, 20_000);

		// The page: ?token= carries the play token to WHEP; without it the page says it is not authorized.
		const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
		try {
			const refused = await (await browser.newContext()).newPage();
			await refused.goto(`${service.url}/watch/keynote`);
			await expect.poll(() => refused.textContent('body'), { timeout: 10_000 }).toMatch(/Not authorized/);
			const page = await (await browser.newContext()).newPage();
			await page.goto(`${service.url}/watch/keynote?token=${playToken}`);
			await page.waitForFunction(() => ((window as unknown as { player?: { framesDecoded: number } }).player?.framesDecoded ?? 0) > 10, undefined, { timeout: 20_000 }).catch(async (error: Error) => {
				// Say where the page got stuck: its state and the line it shows.
				const state = await page.evaluate(() => JSON.stringify((window as unknown as { player: unknown }).player));
				throw new Error(`the watch page decoded no frames: player ${state}, status "${await page.textContent('#status')}" (${error.message})`);
			});
		} finally {
			await browser.close();
		}

		// The publisher's session ends with its own token.
		expect((await fetch(`${service.url}${whipLocation}`, { method: 'DELETE', headers: { authorization: `Bearer ${playToken}` } })).status).toBe(403);
		expect((await fetch(`${service.url}${whipLocation}`, { method: 'DELETE', headers: { authorization: `Bearer ${publishToken}` } })).status).toBe(200);
	});
});

describe('signed tokens: keys from a JWKS (file and URL)', () => {
	const start = useServiceFixture();
	const dirs: string[] = [];
	const servers: Server[] = [];
	afterEach(async () => {
		for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
		await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
	});

	async function keyPair(kid: string) {
		const { publicKey, privateKey } = await generateKeyPair('ES256');
		const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
		const sign = (permissions: Permission[], issuer = 'idp') =>
			new SignJWT({ broadcast_relay: permissions }).setProtectedHeader({ alg: 'ES256', kid }).setAudience('broadcast-relay').setIssuer(issuer).setExpirationTime('5m').sign(privateKey);
		return { jwk, sign };
	}

	async function expectKeysWork(url: string, good: string, strangerToken: string, hmacToken: string) {
		const whip = (token: string) => postSdp(`${url}/whip/keynote`, OFFER, { authorization: `Bearer ${token}` });
		expect((await whip(good)).status).toBe(400); // past the check: the offer itself is refused
		const stranger = await whip(strangerToken);
		expect(stranger.status).toBe(401);
		expect(await stranger.text()).toMatch(/signature does not verify|no key in the JWKS/);
		const hmac = await whip(hmacToken);
		expect(hmac.status).toBe(401);
		expect(await hmac.text()).toMatch(/tokens signed with alg "HS256" are not accepted here/);
	}

	it('from a file: tokens signed by a key in it pass; another key, or HS256 with any secret, do not', async () => {
		const ours = await keyPair('ours');
		const theirs = await keyPair('ours'); // same kid, another key: the signature decides
		const dir = mkdtempSync(join(tmpdir(), 'jwks-'));
		dirs.push(dir);
		const file = join(dir, 'jwks.json');
		writeFileSync(file, JSON.stringify({ keys: [ours.jwk] }));
		const service = await start({ signedTokens: { jwksFile: file, issuer: 'idp' } });
		await expectKeysWork(service.url, await ours.sign([publish('keynote')]), await theirs.sign([publish('keynote')]), await mint([publish('keynote')]));
		// The issuer is checked when configured.
		const wrongIssuer = await postSdp(`${service.url}/whip/keynote`, OFFER, { authorization: `Bearer ${await ours.sign([publish('keynote')], 'someone-else')}` });
		expect(wrongIssuer.status).toBe(401);
		expect(await wrongIssuer.text()).toMatch(/comes from another issuer; its "iss" must be "idp"/);

		writeFileSync(file, '{"keys": 5}');
		await expect(start({ signedTokens: { jwksFile: file } })).rejects.toThrow(InvalidOptionError);
	});

	it('from a loopback URL: fetched once and cached; an unknown kid is refused', async () => {
		const ours = await keyPair('url-key');
		let fetches = 0;
		const server = createServer((_request, response) => {
			fetches += 1;
			response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [ours.jwk] }));
		});
		servers.push(server);
		await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
		const { port } = server.address() as { port: number };
		const service = await start({ signedTokens: { jwksUrl: `http://127.0.0.1:${port}/jwks.json`, issuer: 'idp' } });
		const stranger = await keyPair('unknown-kid');
		await expectKeysWork(service.url, await ours.sign([publish('keynote')]), await stranger.sign([publish('keynote')]), await mint([publish('keynote')]));
		expect((await postSdp(`${service.url}/whip/keynote`, OFFER, { authorization: `Bearer ${await ours.sign([publish('keynote')])}` })).status).toBe(400);
		// One fetch for the first token, at most one more for the unknown kid (jose refetches then, at most every 30 s).
		expect(fetches).toBeGreaterThanOrEqual(1);
		expect(fetches).toBeLessThanOrEqual(2);
	});

	it('a JWKS URL that does not answer: 503 with Retry-After, not a 401 that blames the token', async () => {
		const closed = createServer();
		await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
		const { port } = closed.address() as { port: number };
		await new Promise((resolve) => closed.close(resolve));
		const service = await start({ retryAfterSeconds: 7, signedTokens: { jwksUrl: `http://127.0.0.1:${port}/jwks.json` } });
		const ours = await keyPair('k');
		const response = await postSdp(`${service.url}/whip/keynote`, OFFER, { authorization: `Bearer ${await ours.sign([publish('keynote')])}` });
		expect(response.status).toBe(503);
		expect(response.headers.get('retry-after')).toBe('7');
		expect(await response.text()).toMatch(/cannot check the token now: the JWKS at http:\/\/127.0.0.1:\d+\/jwks.json is unreachable or invalid; try again later/);
	});
});
