import { describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { postSdp, useServiceFixture } from './helpers/service.js';

/** `# TYPE name type` lines of a Prometheus text exposition. */
function types(text: string): Map<string, string> {
	return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

describe('metrics follow Prometheus conventions', () => {
	const start = useServiceFixture();

	it('running totals are counters named *_total, levels are gauges', async () => {
		const service = await start({ demo: 'm', relay: { broadcastDefaults: { video: { width: 320, height: 180, fps: 15, bitrateKbps: 200 } } } });
		await expect.poll(() => service.relay.broadcast('m').live, { timeout: 15_000 }).toBe(true);
		// One WHEP session, so the session counters have something to count.
		const pc = new RTCPeerConnection();
		pc.addTransceiver('video', { direction: 'recvonly' });
		await pc.setLocalDescription(await pc.createOffer());
		const whep = await postSdp(`${service.url}/whep/m`, pc.localDescription!.sdp);
		expect(whep.status).toBe(201);
		await fetch(`${service.url}${whep.headers.get('location')}`, { method: 'DELETE' });
		await pc.close();

		// The libav engine reports about once a second.
		await expect.poll(() => service.relay.broadcast('m').reencoder('video')?.stats.keyframes, { timeout: 5000 }).toBeGreaterThan(0);
		const text = await (await fetch(`${service.url}/metrics`)).text();
		const declared = types(text);
		for (const name of ['broadcast_relay_keyframe_requests_total', 'broadcast_relay_reencoder_restarts_total', 'broadcast_relay_reencoder_keyframes_total', 'broadcast_relay_reencoder_upstream_keyframe_requests_total', 'broadcast_relay_http_sessions_total', 'broadcast_relay_http_requests_total']) {
			expect(declared.get(name), name).toBe('counter');
		}
		for (const name of ['broadcast_relay_viewers', 'broadcast_relay_broadcasts', 'broadcast_relay_worker_consumers', 'broadcast_relay_http_sessions', 'broadcast_relay_reencoder_fps', 'broadcast_relay_reencoder_running', 'broadcast_relay_ready']) {
			expect(declared.get(name), name).toBe('gauge');
		}
		// The old gauge names of running totals are gone.
		expect(declared.has('broadcast_relay_keyframe_requests')).toBe(false);
		expect(declared.has('broadcast_relay_reencoder_restarts')).toBe(false);
		// Every counter of ours ends in _total and no gauge does.
		for (const [name, type] of declared) {
			if (!name.startsWith('broadcast_relay_') || name.startsWith('broadcast_relay_process_')) continue;
			if (type === 'counter') expect(name, name).toMatch(/_total$/);
			if (type === 'gauge') expect(name, name).not.toMatch(/_total$/);
		}
		expect(text).toMatch(/^broadcast_relay_keyframe_requests_total\{broadcast="m",stage="absorbed"\} \d+$/m);
		expect(text).toMatch(/^broadcast_relay_keyframe_requests_total\{broadcast="m",stage="to_reencoder"\} \d+$/m);
		expect(text).toMatch(/^broadcast_relay_reencoder_restarts_total\{broadcast="m",kind="video"\} 0$/m);
		expect(text).toMatch(/^broadcast_relay_reencoder_running\{broadcast="m",kind="video"\} 1$/m);
		// Engine health: one state at 1, the others 0; keyframes by reason; the input's repair.
		expect(text).toMatch(/^broadcast_relay_reencoder_health\{broadcast="m",kind="video",engine="libav",state="(ok|degraded)"\} 1$/m);
		expect(text).toMatch(/^broadcast_relay_reencoder_health\{broadcast="m",kind="video",engine="libav",state="stalled"\} 0$/m);
		expect(text).toMatch(/^broadcast_relay_reencoder_keyframes_total\{broadcast="m",kind="video",reason="interval"\} [1-9]\d*$/m);
		expect(text).toMatch(/^broadcast_relay_reencoder_keyframes_total\{broadcast="m",kind="video",reason="on_demand"\} \d+$/m);
		expect(text).toMatch(/^broadcast_relay_reencoder_input_packets_total\{broadcast="m",kind="video",outcome="lost"\} \d+$/m);
		expect(text).toMatch(/^broadcast_relay_http_sessions_total\{kind="whep"\} 1$/m);
		expect(text).toMatch(/^broadcast_relay_http_sessions\{kind="whep"\} 0$/m);
	});
});
