/**
 * Offers with a data channel (an m=application section), as browsers and
 * werift make them when the page opened an RTCDataChannel before the offer.
 * The relay serves no data channel, but the answer must still have one m= line
 * per offered m= line, in order, with the offer's mids, the unserved ones
 * rejected with port 0 (RFC 3264 §6, RFC 8829 §5.3.1). The answer used to
 * leave the m=application line out; browsers and werift refuse such an answer
 * (werift threw on setRemoteDescription), so the peer never connected.
 */
import { chromium, type Browser } from 'playwright-core';
import sdpTransform from 'sdp-transform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import { sleep } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';
import { WeriftPublisher } from './helpers/weriftPublisher.js';

const video = { width: 160, height: 90, fps: 15, bitrateKbps: 150, keyframeIntervalSeconds: 1 };

/** Checks the answer against its offer the way a browser does: one m= line each, same order, same mids. */
function expectOneAnswerLinePerOfferLine(offer: string, answer: string): void {
	const o = sdpTransform.parse(offer).media;
	const a = sdpTransform.parse(answer).media;
	expect(a.map((m) => [m.type, String(m.mid)])).toEqual(o.map((m) => [m.type, String(m.mid)]));
	const application = a.find((m) => m.type === 'application')!;
	expect(application.port).toBe(0);
	expect(application.protocol).toBe(o.find((m) => m.type === 'application')!.protocol);
	const bundle = sdpTransform.parse(answer).groups?.find((g) => g.type === 'BUNDLE');
	expect(String(bundle?.mids).split(' ')).not.toContain(String(application.mid));
}

describe('offers with a data channel are answered section for section (issue 8 §7)', () => {
	const start = useServiceFixture();

	it('a WHIP publisher and a WHEP viewer that opened a data channel before their offers connect and carry video', async () => {
		const service = await start({ relay: { workers: 1 } });
		const publisher = new WeriftPublisher({ ...video, audio: false });
		publisher.pc.createDataChannel('chat');
		const viewer = new WeriftViewer({ audio: false });
		viewer.pc.createDataChannel('chat');
		try {
			await publisher.connect(async (offer) => {
				expect(offer).toMatch(/^m=application /m);
				const response = await postSdp(`${service.url}/whip/datachannel`, offer);
				const answer = await response.text();
				expect(response.status, answer).toBe(201);
				expectOneAnswerLinePerOfferLine(offer, answer);
				return answer;
			});

			await viewer.connect(async (offer) => {
				expect(offer).toMatch(/^m=application /m);
				// The broadcast is live for playback once its re-encoder runs: until then WHEP answers 409/503.
				const deadline = performance.now() + 20_000;
				for (;;) {
					const response = await postSdp(`${service.url}/whep/datachannel`, offer);
					const answer = await response.text();
					if (response.status === 201) {
						expectOneAnswerLinePerOfferLine(offer, answer);
						return answer;
					}
					expect([409, 503], answer).toContain(response.status);
					if (performance.now() > deadline) throw new Error(`WHEP still ${response.status} after 20 s: ${answer}`);
					await sleep(200);
				}
			});
			await viewer.waitForFrames(10, 20_000);
			expect(viewer.keyframeTimes.length).toBeGreaterThan(0);
		} finally {
			await viewer.close();
			await publisher.close();
		}
	}, 60_000);
});

describe('Chromium peers that opened a data channel first (issue 8 §7)', () => {
	const start = useServiceFixture();
	let browser: Browser;

	beforeAll(async () => {
		browser = await chromium.launch({
			executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
			args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
		});
	});

	afterAll(async () => {
		await browser?.close();
	});

	it('publish over WHIP and play over WHEP, the m=application rejected: Chromium takes the answers and decodes', async () => {
		const service = await start({ relay: { workers: 1, broadcastDefaults: { video: { width: 320, height: 180, fps: 15, bitrateKbps: 300, keyframeIntervalSeconds: 1 } } } });
		const context = await browser.newContext();
		try {
			const page = await context.newPage();
			await page.goto(`${service.url}/`);
			// In the page: each peer opens a data channel before its offer (Chromium puts its m=application after the media sections).
			const published = await page.evaluate(async () => {
				const pc = new RTCPeerConnection();
				pc.createDataChannel('chat');
				const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 180 }, audio: true });
				for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
				await pc.setLocalDescription(await pc.createOffer());
				const response = await fetch('/whip/chromium-dc', { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription!.sdp });
				const answer = await response.text();
				if (response.status !== 201) return { status: response.status, answer, error: '' };
				(window as unknown as { publisher: RTCPeerConnection }).publisher = pc;
				try {
					await pc.setRemoteDescription({ type: 'answer', sdp: answer });
				} catch (error) {
					return { status: response.status, answer, error: String(error) };
				}
				return { status: response.status, answer, error: '' };
			});
			expect(published.status, published.answer).toBe(201);
			expect(published.error, 'Chromium refused the WHIP answer').toBe('');

			const played = await page.evaluate(async () => {
				const pc = new RTCPeerConnection();
				pc.createDataChannel('chat');
				pc.addTransceiver('video', { direction: 'recvonly' });
				pc.addTransceiver('audio', { direction: 'recvonly' });
				await pc.setLocalDescription(await pc.createOffer());
				// Until the re-encoder runs the broadcast is not live for playback (409/503): ask again.
				for (let attempt = 0; attempt < 100; attempt++) {
					const response = await fetch('/whep/chromium-dc', { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription!.sdp });
					const answer = await response.text();
					if (response.status === 201) {
						(window as unknown as { player: RTCPeerConnection }).player = pc;
						try {
							await pc.setRemoteDescription({ type: 'answer', sdp: answer });
						} catch (error) {
							return { status: 201, answer, error: String(error) };
						}
						return { status: 201, answer, error: '' };
					}
					if (response.status !== 409 && response.status !== 503) return { status: response.status, answer, error: '' };
					await new Promise((resolve) => setTimeout(resolve, 200));
				}
				return { status: 0, answer: 'never live', error: '' };
			});
			expect(played.status, played.answer).toBe(201);
			expect(played.error, 'Chromium refused the WHEP answer').toBe('');
			expect(played.answer).toMatch(/^m=application 0 UDP\/DTLS\/SCTP webrtc-datachannel\r$/m);
			expect(published.answer).toMatch(/^m=application 0 UDP\/DTLS\/SCTP webrtc-datachannel\r$/m);

			const framesDecoded = () =>
				page.evaluate(async () => {
					const stats = await (window as unknown as { player: RTCPeerConnection }).player.getStats();
					let frames = 0;
					stats.forEach((report: { type: string; kind?: string; framesDecoded?: number }) => {
						if (report.type === 'inbound-rtp' && report.kind === 'video') frames = report.framesDecoded ?? 0;
					});
					return frames;
				});
			await expect.poll(framesDecoded, { timeout: 30_000, interval: 250 }).toBeGreaterThan(15);
		} finally {
			await context.close();
		}
	}, 60_000);
});
