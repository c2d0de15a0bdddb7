import { describe, expect, it } from 'vitest';
import { KeyframePolicy } from '../../src/reencoder/libav/KeyframePolicy.js';
import { LoadGovernor } from '../../src/reencoder/libav/LoadGovernor.js';

describe('KeyframePolicy: when the next picture is a keyframe', () => {
	it('the first picture, then the fixed interval', () => {
		const policy = new KeyframePolicy({ intervalMs: 2000, minIntervalMs: 500 });
		expect(policy.due(0)).toBe(true);
		policy.made(0);
		expect(policy.due(1999)).toBe(false);
		expect(policy.due(2000)).toBe(true);
		policy.made(2000);
		expect(policy.counts).toEqual({ made: 2, onDemand: 0, requestsReceived: 0 });
	});

	it('a request is served at once when the last keyframe is older than minIntervalMs', () => {
		const policy = new KeyframePolicy({ intervalMs: 10_000, minIntervalMs: 500 });
		policy.made(0);
		policy.request();
		expect(policy.due(600)).toBe(true);
		policy.made(600);
		expect(policy.counts.onDemand).toBe(1);
		expect(policy.pendingAt()).toBeUndefined();
	});

	it('a storm of requests inside minIntervalMs is coalesced into one keyframe when it ends', () => {
		const policy = new KeyframePolicy({ intervalMs: 10_000, minIntervalMs: 500 });
		policy.made(0);
		let made = 0;
		// 100 requests a second for 3 s, a picture every 33 ms.
		for (let t = 0; t <= 3000; t += 10) {
			policy.request();
			if (t % 30 === 0 && policy.due(t)) {
				policy.made(t);
				made += 1;
			}
		}
		expect(policy.counts.requestsReceived).toBe(301);
		// At most one per 500 ms: 6 in 3 s.
		expect(made).toBeLessThanOrEqual(6);
		expect(made).toBeGreaterThanOrEqual(5);
		expect(policy.pendingAt()).toBe(policy.lastKeyframeAt + 500);
	});

	it('a viewer joining just after an interval keyframe is served at once; a second within minIntervalMs of that waits', () => {
		const policy = new KeyframePolicy({ intervalMs: 2000, minIntervalMs: 500 });
		policy.made(0);
		policy.made(2000); // the interval's
		policy.request();
		expect(policy.due(2100)).toBe(true);
		policy.made(2100);
		expect(policy.counts.onDemand).toBe(1);
		policy.request();
		expect(policy.due(2400)).toBe(false);
		expect(policy.pendingAt()).toBe(2600);
		expect(policy.due(2600)).toBe(true);
	});

	it('minIntervalMs 0 serves every request with the next picture', () => {
		const policy = new KeyframePolicy({ intervalMs: 10_000, minIntervalMs: 0 });
		policy.made(0);
		expect(policy.due(33)).toBe(false);
		policy.request();
		expect(policy.due(33)).toBe(true);
	});
});

describe('LoadGovernor: effort steps under CPU pressure', () => {
	it('raises effort a step per second of falling behind, to 2 at most', () => {
		const governor = new LoadGovernor({ fps: 30 });
		const behind = { encoded: 15, skipped: 15, latencyP95: 200 };
		expect(governor.second(behind)).toBe(1);
		expect(governor.second(behind)).toBe(2);
		expect(governor.second(behind)).toBe(2);
	});

	it('lowers effort a step after calm seconds of keeping up, and not on a single good second', () => {
		const governor = new LoadGovernor({ fps: 30, calmSeconds: 2 });
		const behind = { encoded: 10, skipped: 20, latencyP95: 300 };
		const calm = { encoded: 30, skipped: 0, latencyP95: 20 };
		governor.second(behind);
		governor.second(behind);
		expect(governor.second(calm)).toBe(2);
		expect(governor.second(calm)).toBe(1);
		expect(governor.second(calm)).toBe(1);
		expect(governor.second(calm)).toBe(0);
	});

	it('a step down that proves too much doubles the calm needed before the next one (no flapping)', () => {
		const governor = new LoadGovernor({ fps: 30, calmSeconds: 2 });
		const behind = { encoded: 10, skipped: 20, latencyP95: 300 };
		const calm = { encoded: 30, skipped: 0, latencyP95: 20 };
		governor.second(behind);
		expect(governor.second(calm)).toBe(1);
		expect(governor.second(calm)).toBe(0);
		// Behind again at once: back to 1, and now 4 calm seconds before trying 0 again.
		expect(governor.second(behind)).toBe(1);
		for (let i = 0; i < 3; i++) expect(governor.second(calm)).toBe(1);
		expect(governor.second(calm)).toBe(0);
	});

	it('frames skipped in a burst after an input stall, the newest encoded at once, are not falling behind', () => {
		const governor = new LoadGovernor({ fps: 30 });
		expect(governor.second({ encoded: 16, skipped: 14, latencyP95: 12 })).toBe(0);
	});

	it('a skipped frame or two in a second is not falling behind', () => {
		const governor = new LoadGovernor({ fps: 30 });
		expect(governor.second({ encoded: 29, skipped: 1, latencyP95: 40 })).toBe(0);
	});
});
