import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, PortRangeExhaustedError } from '../../src/errors.js';
import { PortPool } from '../../src/ports/PortPool.js';

describe('port pool', () => {
	it('lends even/odd pairs, skips ports in use, and runs out with a typed error', async () => {
		const pool = new PortPool({ min: 53001, max: 53006, host: '127.0.0.1' });
		const busy = createSocket('udp4');
		await new Promise<void>((resolve) => busy.bind(53004, '127.0.0.1', resolve));
		try {
			const first = await pool.acquire();
			expect(first).toEqual({ rtp: 53002, rtcp: 53003 });
			await expect(pool.acquire()).rejects.toBeInstanceOf(PortRangeExhaustedError);
			pool.release(first);
			expect(await pool.acquire()).toEqual(first);
		} finally {
			busy.close();
		}
	});

	it('a feed lease also reserves the port numbers on the feed address, holding its RTCP port until released', async () => {
		const pool = new PortPool({ min: 53011, max: 53016, host: '127.0.0.1', feedHost: '127.0.0.2' });
		const busyOnFeed = createSocket('udp4');
		await new Promise<void>((resolve) => busyOnFeed.bind(53012, '127.0.0.2', resolve));
		const bindable = (address: string, port: number): Promise<boolean> =>
			new Promise((resolve) => {
				const probe = createSocket('udp4');
				probe.once('error', () => resolve(false));
				probe.bind({ address, port, exclusive: true }, () => probe.close(() => resolve(true)));
			});
		try {
			// 53012 is free on loopback but taken on the feed address: skipped.
			const feed = await pool.acquireFeed();
			expect(feed).toEqual({ rtp: 53014, rtcp: 53015, host: '127.0.0.1', feedHost: '127.0.0.2' });
			expect(await bindable('127.0.0.2', 53015), 'the feed RTCP port is held by the pool').toBe(false);
			expect(await bindable('127.0.0.2', 53014), 'the feed RTP port is left for the mediasoup transport').toBe(true);
			pool.release(feed);
			await new Promise((resolve) => setTimeout(resolve, 20));
			expect(await bindable('127.0.0.2', 53015), 'released').toBe(true);
		} finally {
			busyOnFeed.close();
		}
	});

	it('refuses a range that is not one', () => {
		expect(() => new PortPool({ min: 100, max: 200, host: '127.0.0.1' })).toThrow(InvalidOptionError);
		expect(() => new PortPool({ min: 6000, max: 6000, host: '127.0.0.1' })).toThrow(/min < max/);
	});
});
