import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { waitForUdpBind } from '../../src/ports/waitForUdpBind.js';

describe('waitForUdpBind', () => {
	const sockets: Socket[] = [];
	afterEach(() => {
		for (const socket of sockets.splice(0)) socket.close();
	});
	const bind = (address: string, port: number): Promise<void> =>
		new Promise((resolve) => {
			const socket = createSocket('udp4');
			sockets.push(socket);
			socket.bind(port, address, () => resolve());
		});

	it('waits for the port on the given address: the feeding transport on 127.0.0.2 with the same number is not FFmpeg', async () => {
		await bind('127.0.0.2', 53120);
		expect(await waitForUdpBind(53120, 200, undefined, '127.0.0.1')).toBe(false);
		await bind('127.0.0.1', 53120);
		expect(await waitForUdpBind(53120, 200, undefined, '127.0.0.1')).toBe(true);
		// Without an address any local address counts, as before.
		await bind('127.0.0.2', 53122);
		expect(await waitForUdpBind(53122, 200)).toBe(true);
	});
});
