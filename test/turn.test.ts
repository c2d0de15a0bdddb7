import { chromium, type Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadServiceConfig } from '../src/service/config.js';
import { iceServerLinks, parseIceServerLinks, turnRestCredentials } from '../src/turn/credentials.js';
import { Coturn } from './helpers/coturn.js';
import { postSdp, useServiceFixture } from './helpers/service.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TURN_SECRET = 'turn-shared-secret-for-the-test';
const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 };

describe('TURN REST credentials and Link headers (pure)', () => {
	it('username is expiry:id, credential base64(HMAC-SHA1(secret, username)) as coturn computes it', () => {
		// Known answer from: echo -n "1700003600:session-1" | openssl dgst -sha1 -hmac "turn-shared-secret-1234" -binary | base64
		const credentials = turnRestCredentials({ secret: 'turn-shared-secret-1234', ttlSeconds: 3600, id: 'session-1', now: 1_700_000_000_000 });
		expect(credentials).toEqual({ username: '1700003600:session-1', credential: 'DBg3/Bbt5IMPlyq2w3wbOrsa19k=', expiresAt: new Date(1_700_003_600_000) });
		// coturn reads the expiry up to the first ':', so an id may not add one.
		expect(turnRestCredentials({ secret: 's', ttlSeconds: 60, id: 'a:b', now: 0 }).username).toBe('60:a_b');
	});

	it('Link headers per RFC 9725 §4.6: turn: URLs with credentials, stun: URLs bare; a client parses them back', () => {
		const links = iceServerLinks({ urls: ['stun:stun.example.net:3478', 'turn:turn.example.net:3478?transport=udp', 'turns:turn.example.net:5349?transport=tcp'], secret: 'turn-shared-secret-1234', ttlSeconds: 3600 }, 'session-1', 1_700_000_000_000);
		expect(links).toEqual([
			'<stun:stun.example.net:3478>; rel="ice-server"',
			'<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="1700003600:session-1"; credential="DBg3/Bbt5IMPlyq2w3wbOrsa19k="; credential-type="password"',
			'<turns:turn.example.net:5349?transport=tcp>; rel="ice-server"; username="1700003600:session-1"; credential="DBg3/Bbt5IMPlyq2w3wbOrsa19k="; credential-type="password"',
		]);
		// As fetch's Headers.get() gives several Link headers: joined with ", "; other links are left out.
		const joined = [...links, '</whip/x/sessions/y>; rel="self"'].join(', ');
		expect(parseIceServerLinks(joined)).toEqual([
			{ urls: 'stun:stun.example.net:3478' },
			{ urls: 'turn:turn.example.net:3478?transport=udp', username: '1700003600:session-1', credential: 'DBg3/Bbt5IMPlyq2w3wbOrsa19k=' },
			{ urls: 'turns:turn.example.net:5349?transport=tcp', username: '1700003600:session-1', credential: 'DBg3/Bbt5IMPlyq2w3wbOrsa19k=' },
		]);
		expect(iceServerLinks({ urls: [], ttlSeconds: 60 }, 'x')).toEqual([]);
	});

	it('configuration: turn: URLs need the secret, the secret needs a turn: URL, URLs are checked', () => {
		expect(() => loadServiceConfig({ flags: { turn: { urls: ['turn:127.0.0.1:3478'] } } })).toThrow(/turn: URLs need turn.secret/);
		expect(() => loadServiceConfig({ flags: { turn: { secret: TURN_SECRET } } })).toThrow(/no turn: URL is; add turn.urls/);
		expect(() => loadServiceConfig({ flags: { turn: { urls: ['http://turn.example.net'], secret: TURN_SECRET } } })).toThrow(/ICE server URLs look like/);
		expect(() => loadServiceConfig({ flags: { turn: { urls: ['turn:x'], secret: 'short' } } })).toThrow(/at least 16 characters/);
		const fromEnv = loadServiceConfig({ env: { BROADCAST_RELAY_TURN_URLS: 'turn:turn.example.net:3478,stun:stun.example.net', BROADCAST_RELAY_TURN_SECRET: TURN_SECRET, BROADCAST_RELAY_TURN_TTL: '600' } });
		expect(fromEnv.turn).toEqual({ urls: ['turn:turn.example.net:3478', 'stun:stun.example.net'], secret: TURN_SECRET, ttlSeconds: 600 });
		expect(loadServiceConfig({}).turn).toEqual({ urls: [], ttlSeconds: 86_400 });
	});
});

describe('TURN for real: coturn on loopback, a relay-only Chromium WHEP viewer', () => {
	const start = useServiceFixture();
	let browser: Browser;
	let turn: Coturn | undefined;
	let publisher: WeriftPublisher | undefined;

	beforeAll(async () => {
		browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-quic'] });
	});
	afterAll(async () => {
		await browser?.close();
	});
	afterEach(async () => {
		await publisher?.close();
		await turn?.close();
	});

	it('the WHEP answer carries TURN credentials in Link headers, and a viewer allowed only relayed candidates decodes frames through coturn', async () => {
		const relayMin = 56_000 + Math.floor(Math.random() * 80) * 40;
		turn = await Coturn.start({ secret: TURN_SECRET, relayPorts: { min: relayMin, max: relayMin + 39 } });
		const service = await start({ turn: { urls: [turn.url], secret: TURN_SECRET, ttlSeconds: 600 }, relay: { broadcastDefaults: { video } } });

		publisher = new WeriftPublisher({ ...video, audio: false });
		await publisher.connect(async (offer) => {
			const response = await postSdp(`${service.url}/whip/turned`, offer);
			expect(response.status).toBe(201);
			// WHIP answers carry them too.
			expect(parseIceServerLinks(response.headers.get('link'))).toHaveLength(1);
			return response.text();
		});
		await expect.poll(() => service.relay.broadcasts.get('turned')?.live, { timeout: 15_000 }).toBe(true);

		const context = await browser.newContext();
		try {
			const page = await context.newPage();
			// RFC 9725 §4.6: the ICE servers come with the answer, so the offer is created first, sent, and only then
			// set as the local description, with the servers configured: gathering starts at setLocalDescription.
			const offer = await page.evaluate(async () => {
				const pc = new RTCPeerConnection({ iceTransportPolicy: 'relay' });
				(window as unknown as { pc: RTCPeerConnection }).pc = pc;
				pc.addTransceiver('video', { direction: 'recvonly' });
				return (await pc.createOffer()).sdp!;
			});
			const response = await postSdp(`${service.url}/whep/turned`, offer);
			expect(response.status).toBe(201);
			const iceServers = parseIceServerLinks(response.headers.get('link'));
			expect(iceServers).toEqual([{ urls: turn.url, username: expect.stringMatching(/^\d{10}:[A-Za-z0-9_-]+$/), credential: expect.stringMatching(/^[A-Za-z0-9+/]{27}=$/) }]);
			const expiry = Number(iceServers[0]!.username!.split(':')[0]);
			expect(expiry * 1000).toBeGreaterThan(Date.now() + 590_000);
			expect(expiry * 1000).toBeLessThanOrEqual(Date.now() + 600_000);
			const answer = await response.text();

			await page.evaluate(
				async ({ offerSdp, answerSdp, servers }) => {
					const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
					pc.setConfiguration({ iceServers: servers, iceTransportPolicy: 'relay' });
					await pc.setLocalDescription({ type: 'offer', sdp: offerSdp });
					await pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
				},
				{ offerSdp: offer, answerSdp: answer, servers: iceServers },
			);

			const framesDecoded = () =>
				page.evaluate(async () => {
					const stats = await (window as unknown as { pc: RTCPeerConnection }).pc.getStats();
					let frames = 0;
					stats.forEach((s) => {
						if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded ?? 0;
					});
					return frames;
				});
			await expect.poll(framesDecoded, { timeout: 20_000, interval: 250 }).toBeGreaterThan(10);
			const first = await framesDecoded();
			await page.waitForTimeout(1000);
			expect(await framesDecoded()).toBeGreaterThan(first);

			// The media went through coturn: the selected pair's local candidate is a relayed one on coturn's relay address.
			const local = await page.evaluate(async () => {
				const stats = await (window as unknown as { pc: RTCPeerConnection }).pc.getStats();
				let pairId = '';
				stats.forEach((s) => {
					if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
				});
				const pair = stats.get(pairId);
				const candidate = pair ? stats.get(pair.localCandidateId) : undefined;
				return candidate ? { type: candidate.candidateType as string, address: candidate.address as string, port: candidate.port as number } : undefined;
			});
			console.log(`Chromium's selected local candidate: ${JSON.stringify(local)}`);
			expect(local).toMatchObject({ type: 'relay', address: '127.0.0.1' });
			expect(local!.port).toBeGreaterThanOrEqual(relayMin);
			expect(local!.port).toBeLessThanOrEqual(relayMin + 39);
			await page.evaluate(() => (window as unknown as { pc: RTCPeerConnection }).pc.close());

			// The watch page takes the same Link headers: it configures the TURN server before its local description, and plays.
			const watch = await context.newPage();
			await watch.goto(`${service.url}/watch/turned`);
			type Player = { framesDecoded: number; iceServers?: string[] };
			await watch.waitForFunction(() => ((window as unknown as { player?: Player }).player?.framesDecoded ?? 0) > 10, undefined, { timeout: 20_000 });
			expect(await watch.evaluate(() => (window as unknown as { player: Player }).player.iceServers)).toEqual([turn.url]);
		} finally {
			await context.close();
		}
	});
});
