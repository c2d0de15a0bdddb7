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

	it('refuses a range that is not one', () => {
		expect(() => new PortPool({ min: 100, max: 200, host: '127.0.0.1' })).toThrow(InvalidOptionError);
		expect(() => new PortPool({ min: 6000, max: 6000, host: '127.0.0.1' })).toThrow(/min < max/);
	});
});
