import { execFileSync } from 'node:child_process';
import { afterEach } from 'vitest';
import type { Broadcast } from '../../src/Broadcast.js';
import { createRelay, type Relay, type RelayOptionsInput } from '../../src/index.js';
import type { FfmpegProcess } from '../../src/ffmpeg/FfmpegProcess.js';
import { startTestBroadcaster, type TestBroadcasterOptions } from './testBroadcaster.js';
import { WeriftViewer, type WeriftViewerOptions } from '../../src/harness/WeriftViewer.js';

/**
 * Media processes that are children of this test process: FFmpeg (test broadcasters, the
 * FFmpeg engine's re-encoders) and libav engine processes.
 */
export function mediaChildren(): number[] {
	try {
		const out = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'ffmpeg|reencoder/libav/child'], { encoding: 'utf8' });
		return out.split('\n').filter(Boolean).map(Number);
	} catch {
		return []; // pgrep exits 1 when nothing matches
	}
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Per-test resources with one owner: everything made through the fixture is
 * closed in afterEach, viewers first, then broadcasters, then the relay.
 */
/** The re-encoder engines; pipeline tests run against each. */
export const ENGINES = ['libav', 'ffmpeg'] as const;
export type Engine = (typeof ENGINES)[number];

export function useRelayFixture() {
	const state: { relays: Relay[]; broadcasters: FfmpegProcess[]; viewers: WeriftViewer[] } = {
		relays: [],
		broadcasters: [],
		viewers: [],
	};

	afterEach(async () => {
		await Promise.all(state.viewers.splice(0).map((v) => v.close().catch(() => undefined)));
		await Promise.all(state.broadcasters.splice(0).map((b) => b.close()));
		await Promise.all(state.relays.splice(0).map((r) => r.close()));
	});

	return {
		async relay(options: RelayOptionsInput = {}): Promise<Relay> {
			// CPU admission off: these tests load the 2 cores on purpose (viewers, broadcasters, other
			// relays) and assert on pipelines, not on admission (test/cpuAdmission.test.ts does that).
			const relay = await createRelay({ workers: 2, cpuAdmission: false, ...options });
			state.relays.push(relay);
			return relay;
		},
		async broadcaster(broadcast: Broadcast, options: TestBroadcasterOptions = {}): Promise<FfmpegProcess> {
			const broadcaster = await startTestBroadcaster(broadcast, options);
			state.broadcasters.push(broadcaster);
			return broadcaster;
		},
		async viewer(broadcast: Broadcast, options: WeriftViewerOptions = {}): Promise<WeriftViewer> {
			const viewer = new WeriftViewer(options);
			state.viewers.push(viewer);
			let viewerId = '';
			await viewer.connect(async (offer) => {
				const joined = await broadcast.addViewer(offer);
				viewerId = joined.viewer.id;
				return joined.answer;
			});
			viewer.relayViewerId = viewerId;
			return viewer;
		},
		forget(viewer: WeriftViewer): void {
			state.viewers.splice(state.viewers.indexOf(viewer), 1);
		},
	};
}
