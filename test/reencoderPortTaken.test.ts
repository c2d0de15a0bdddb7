import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { ENGINES, useRelayFixture } from './helpers/fixture.js';

const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 } as const;

/** Binds 127.0.0.1:port as soon as it is free (FFmpeg releases it when it exits), within `timeoutMs`. */
async function squat(port: number, timeoutMs: number): Promise<Socket> {
	const deadline = performance.now() + timeoutMs;
	for (;;) {
		const socket = createSocket('udp4');
		const bound = await new Promise<boolean>((resolve) => {
			socket.once('error', () => resolve(false));
			socket.bind({ address: '127.0.0.1', port, exclusive: true }, () => resolve(true));
		});
		if (bound) return socket;
		socket.close();
		if (performance.now() > deadline) throw new Error(`port ${port} still held after ${timeoutMs} ms`);
		await new Promise((resolve) => setTimeout(resolve, 2));
	}
}

/**
 * Regression for the suite's "viewers with 0 frames in 20 s" (issue 8 §6): FFmpeg's
 * input ports were checked when lent and bound later, at every restart. When any
 * other socket took one (an ephemeral port of another program, or another relay's
 * pool on the same host), every restart failed with "bind failed: Address already
 * in use" and the broadcast never made another frame. Here a squatter takes the
 * port on purpose the moment FFmpeg dies.
 */
describe.each(ENGINES)('re-encoder input port taken by another program (%s engine)', (engine) => {
	const fixture = useRelayFixture();
	const squatters: Socket[] = [];
	afterEach(() => {
		for (const socket of squatters.splice(0)) socket.close();
	});

	it('the re-encoder process killed and its input port taken: the input moves to a fresh pair, viewers get video again, same producer', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'port-taken', engine, video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		const viewer = await fixture.viewer(broadcast, { audio: false });
		await viewer.waitForFrames(10, 20_000);

		const reencoder = broadcast.reencoder('video')!;
		const producerId = reencoder.producer.id;
		const takenPort = reencoder.stats.inputPort;
		expect(takenPort).toBeGreaterThan(0);

		process.kill(reencoder.pid!, 'SIGKILL');
		squatters.push(await squat(takenPort, 5000));
		const killedAt = performance.now();

		await viewer.waitFor(() => viewer.frameTimes.filter((t) => t > killedAt).length > 10, 15_000, 'video after the port was taken');
		const stats = reencoder.stats;
		expect(stats.inputMoves).toBe(1);
		expect(stats.inputPort).not.toBe(takenPort);
		expect(stats.running).toBe(true);
		expect(reencoder.producer.id).toBe(producerId);
	});
});
