import { describe, expect, it } from 'vitest';
import { payloadProfileKey, placeViewer } from '../../src/fanout/placement.js';

const budget = { consumersPerWorker: 10, consumersPerRouter: 4 };
const workers = (...loads: number[]) => loads.map((consumers, slot) => ({ slot, alive: true, consumers }));

describe('viewer placement policy', () => {
	it('opens a router on the least-loaded worker when none exists', () => {
		expect(placeViewer(workers(3, 1), [], budget, { consumers: 2, profile: 'p' })).toEqual({ kind: 'new', slot: 1 });
	});

	it('fills the fullest router with room and the same profile before opening another', () => {
		const routers = [
			{ id: 'a', slot: 0, consumers: 2, profile: 'p' },
			{ id: 'b', slot: 0, consumers: 1, profile: 'p' },
			{ id: 'c', slot: 0, consumers: 0, profile: 'q' },
		];
		expect(placeViewer(workers(3, 9), routers, budget, { consumers: 2, profile: 'p' })).toEqual({ kind: 'existing', routerId: 'a', slot: 0 });
		expect(placeViewer(workers(3, 9), routers, budget, { consumers: 3, profile: 'p' })).toEqual({ kind: 'existing', routerId: 'b', slot: 0 });
		expect(placeViewer(workers(3, 9), routers, budget, { consumers: 2, profile: 'r' })).toEqual({ kind: 'new', slot: 0 });
	});

	it('skips dead and full workers, and says full when nothing fits', () => {
		const pool = [
			{ slot: 0, alive: false, consumers: 0 },
			{ slot: 1, alive: true, consumers: 9 },
			{ slot: 2, alive: true, consumers: 4 },
		];
		expect(placeViewer(pool, [], budget, { consumers: 2, profile: 'p' })).toEqual({ kind: 'new', slot: 2 });
		expect(placeViewer(pool, [], budget, { consumers: 7, profile: 'p' })).toEqual({ kind: 'full' });
	});

	it('keys profiles independently of order', () => {
		expect(payloadProfileKey({ opus: 111, VP8: 96 })).toBe(payloadProfileKey({ VP8: 96, opus: 111 }));
	});
});
