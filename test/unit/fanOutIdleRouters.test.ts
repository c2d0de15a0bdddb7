/**
 * The fan-out's idle-router rule on its own, with fake workers and routers (the
 * rule is bookkeeping; test/viewerRouters.test.ts runs it on real mediasoup):
 * a router whose tally falls to 0 closes after the linger, a join placed on it
 * meanwhile keeps it, and no more idle routers linger than the cap.
 */
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FanOut, type PublishedTrack } from '../../src/fanout/FanOut.js';
import type { WorkerPool } from '../../src/workers/WorkerPool.js';

function fakePool(workers: number) {
	const routers: Array<{ closed: boolean }> = [];
	const slots = Array.from({ length: workers }, (_, index) => ({
		index,
		worker: {
			pid: 1000 + index,
			died: false,
			closed: false,
			async createRouter() {
				const router = {
					id: `r${routers.length}`,
					closed: false,
					observer: new EventEmitter(),
					close() {
						if (router.closed) return;
						router.closed = true;
						router.observer.emit('close');
					},
				};
				routers.push(router);
				return router;
			},
		},
	}));
	const pool = { slots, slot: (i: number) => slots[i]! } as unknown as WorkerPool;
	return { pool, routers, open: () => routers.filter((r) => !r.closed).length };
}

function fanOut(pool: WorkerPool, options: { idleRouterLingerMs?: number; maxIdleRouters?: number } = {}): FanOut {
	const out: FanOut = new FanOut({
		broadcastId: 'b',
		pool,
		budget: { consumersPerWorker: 100, consumersPerRouter: 10 },
		workerConsumers: (i) => out.consumersOn(i),
		logger: pino({ level: 'silent' }),
		...options,
	});
	// One published VP8 track: routers are made per VP8 payload type.
	out.setTracks([{ kind: 'video', codec: 'VP8', producer: { id: 'video' }, router: {} } as unknown as PublishedTrack]);
	return out;
}

describe('fan-out: idle viewer routers', () => {
	beforeEach(() => vi.useFakeTimers());
	afterEach(() => vi.useRealTimers());

	it('a router whose last placement is given back closes after the linger; a join placed on it meanwhile keeps it', async () => {
		const { pool, open } = fakePool(1);
		const out = fanOut(pool, { idleRouterLingerMs: 1000 });
		const a = out.assign({ VP8: 100 }, 1);
		await a.entry.router;
		out.release(a);
		await vi.advanceTimersByTimeAsync(900);
		// A join reserves its place on the idle router before its viewer exists: the router stays, and is the same one.
		const b = out.assign({ VP8: 100 }, 1);
		expect(b.routerId).toBe(a.routerId);
		await vi.advanceTimersByTimeAsync(5000);
		expect(open()).toBe(1);
		expect(out.routers().map((r) => r.consumers)).toEqual([1]);
		out.release(b);
		await vi.advanceTimersByTimeAsync(999);
		expect(open()).toBe(1);
		await vi.advanceTimersByTimeAsync(1);
		expect(open()).toBe(0);
		expect(out.routers()).toEqual([]);
		// Giving a placement back twice, or after its router closed, changes nothing.
		out.release(b);
		expect(out.consumersOn(0)).toBe(0);
		// The next join gets a new router.
		const c = out.assign({ VP8: 100 }, 1);
		expect(c.routerId).not.toBe(a.routerId);
		await c.entry.router;
		expect(open()).toBe(1);
		out.close();
	});

	it('no more idle routers linger than the cap: the longest idle closes at once', async () => {
		const { pool, open } = fakePool(2);
		const out = fanOut(pool, { idleRouterLingerMs: 60_000 });
		const placements = [];
		for (let pt = 96; pt < 106; pt++) placements.push(out.assign({ VP8: pt }, 1));
		await Promise.all(placements.map((p) => p.entry.router));
		expect(open()).toBe(10);
		for (const p of placements) out.release(p);
		await vi.advanceTimersByTimeAsync(0);
		// One per worker by default; the two released last are the ones kept.
		expect(out.routers().map((r) => r.profile)).toEqual(['VP8:104', 'VP8:105']);
		expect(open()).toBe(2);
		out.close();
		await vi.advanceTimersByTimeAsync(0);
		expect(open()).toBe(0);
		expect(vi.getTimerCount()).toBe(0);
	});

	it('with no linger a router closes as its last placement is given back, and a concurrent join on another profile is untouched', async () => {
		const { pool, open } = fakePool(1);
		const out = fanOut(pool, { idleRouterLingerMs: 0 });
		const a = out.assign({ VP8: 96 }, 1);
		const b = out.assign({ VP8: 97 }, 1);
		const a2 = out.assign({ VP8: 96 }, 1);
		await Promise.all([a.entry.router, b.entry.router]);
		out.release(a);
		expect(open()).toBe(2); // a2 still holds its place on a's router
		out.release(a2);
		await vi.advanceTimersByTimeAsync(0);
		expect(open()).toBe(1);
		expect(out.routers().map((r) => [r.profile, r.consumers])).toEqual([['VP8:97', 1]]);
		out.close();
	});
});
