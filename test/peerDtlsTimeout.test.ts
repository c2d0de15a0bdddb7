import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WeriftViewer } from '../src/harness/WeriftViewer.js';
import { sleep, useRelayFixture } from './helpers/fixture.js';
import { StunOnlyPeer } from './helpers/stunOnlyPeer.js';

const PEER_TIMEOUT_MS = 2500;

/** Log lines of the relay, parsed. */
function logSink(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
	const lines: Array<Record<string, unknown>> = [];
	const stream = new Writable({
		write(chunk: Buffer, _encoding, done) {
			for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
			done();
		},
	});
	return { logger: pino({ level: 'info' }, stream), lines };
}

/**
 * A viewer whose ICE connects but whose DTLS never completes (issue 8 §6): it
 * keeps sending consent checks, so it never looks silent, and it used to hold
 * its place and consumers for ever while receiving nothing. It is now ended
 * after peerTimeoutMs with the reason logged.
 */
describe('a WebRTC viewer whose DTLS never completes', () => {
	const fixture = useRelayFixture();
	const peers: StunOnlyPeer[] = [];
	afterEach(() => {
		for (const peer of peers.splice(0)) peer.close();
	});

	it('is ended after peerTimeoutMs although its ICE is up and it keeps sending', async () => {
		const { logger, lines } = logSink();
		const relay = await fixture.relay({ peerTimeoutMs: PEER_TIMEOUT_MS, logger });
		const broadcast = await relay.createBroadcast({ id: 'no-dtls', mode: 'baseline' });
		await fixture.broadcaster(broadcast, { width: 320, height: 180, fps: 15, audio: false });

		// A real offer (werift's), answered by the relay; the offerer itself never takes the answer.
		const offerer = new WeriftViewer({ audio: false });
		await offerer.pc.setLocalDescription(await offerer.pc.createOffer());
		const { viewer, answer } = await broadcast.addViewer(offerer.pc.localDescription!.sdp);
		await offerer.close();
		const closed = new Promise<string>((resolve) => viewer.once('close', resolve));

		const peer = new StunOnlyPeer();
		peers.push(peer);
		await peer.start(answer);
		const transport = viewer.transport as import('mediasoup').types.WebRtcTransport;
		const deadline = performance.now() + 2000;
		while (transport.iceState !== 'completed' && transport.iceState !== 'connected' && performance.now() < deadline) await sleep(50);
		expect(transport.iceState).toMatch(/connected|completed/);

		const reason = await Promise.race([closed, sleep(PEER_TIMEOUT_MS * 3).then(() => 'still open')]);
		expect(reason).toBe('transport-closed');
		// mediasoup sent it DTLS (and STUN answers) all along; it answered none of the DTLS.
		expect(peer.received).toBeGreaterThan(2);
		expect(lines.some((l) => l.msg === 'viewer gone' && l.reason === 'DTLS did not complete in time')).toBe(true);
		expect(broadcast.viewers.size).toBe(0);
	});
});
