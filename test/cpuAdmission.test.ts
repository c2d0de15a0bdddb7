import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { CapacityExceededError } from '../src/errors.js';
import { sleep } from './helpers/fixture.js';
import { postSdp, useServiceFixture } from './helpers/service.js';

/** One busy loop per core for `seconds` (bounded: each stops by itself). */
function saturateCpu(seconds: number): ChildProcess[] {
	return Array.from({ length: availableParallelism() }, () =>
		spawn(process.execPath, ['-e', `const end = Date.now() + ${seconds * 1000}; while (Date.now() < end) {}`], { stdio: 'ignore' }),
	);
}

async function sendonlyOffer(): Promise<string> {
	const pc = new RTCPeerConnection();
	pc.addTransceiver('video', { direction: 'sendonly' });
	await pc.setLocalDescription(await pc.createOffer());
	const sdp = pc.localDescription!.sdp;
	await pc.close();
	return sdp;
}

describe('CPU admission: a new re-encoded broadcast needs CPU the machine has', () => {
	const start = useServiceFixture();

	it('with every core busy, a new 720p30 re-encoded broadcast is refused (WHIP 503 + Retry-After, API 503, CapacityExceededError) and nothing is created; baseline still works; admitted again once the load ends', async () => {
		const service = await start({ retryAfterSeconds: 3, relay: { cpuAdmission: true } });
		const loops = saturateCpu(20);
		try {
			// The admission window is 5 s: let it see nothing but busy loops.
			await sleep(5500);
			const whip = await postSdp(`${service.url}/whip/too-many`, await sendonlyOffer());
			expect(whip.status).toBe(503);
			expect(whip.headers.get('retry-after')).toBe('3');
			expect(await whip.text()).toMatch(/no CPU left for another re-encoded broadcast/);
			const api = await fetch(`${service.url}/api/broadcasts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'api-one' }) });
			expect(api.status).toBe(503);
			await expect(service.relay.createBroadcast({ id: 'direct' })).rejects.toBeInstanceOf(CapacityExceededError);
			expect(service.relay.broadcasts.size).toBe(0);
			// Baseline mode re-encodes nothing, so it is not held back.
			const baseline = await service.relay.createBroadcast({ id: 'baseline-ok', mode: 'baseline' });
			expect(service.relay.broadcasts.size).toBe(1);
			await baseline.close();
		} finally {
			for (const loop of loops) loop.kill('SIGKILL');
		}
		await sleep(5500);
		const broadcast = await service.relay.createBroadcast({ id: 'after-load' });
		expect(broadcast.id).toBe('after-load');
	});
});
