import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { pino } from 'pino';
import type { Broadcast } from '../src/Broadcast.js';
import type { Relay } from '../src/index.js';
import { testSourceArgs } from '../src/ffmpeg/args.js';
import { resolveFfmpeg } from '../src/ffmpeg/binary.js';
import { FfmpegProcess } from '../src/ffmpeg/FfmpegProcess.js';
import { TrackReencoder } from '../src/reencoder/TrackReencoder.js';
import { mediaChildren, useRelayFixture } from './helpers/fixture.js';

const video = { width: 320, height: 180, fps: 15, bitrateKbps: 200, keyframeIntervalSeconds: 1 } as const;

type Outcome = { kind: 'rebuilt'; workerIndex: number } | { kind: 'rebuildfailed'; workerIndex: number; error: Error };

/** The broadcast's next rebuilt (for `workerIndex`) or rebuildfailed event. */
function outcome(broadcast: Broadcast, workerIndex: number): Promise<Outcome> {
	return new Promise((resolve) => {
		broadcast.on('rebuilt', (event) => {
			if (event.workerIndex === workerIndex) resolve({ kind: 'rebuilt', ...event });
		});
		broadcast.once('rebuildfailed', (event) => resolve({ kind: 'rebuildfailed', ...event }));
	});
}

/**
 * Kills the worker the next router of `tier` is made on, the moment it is
 * made: that is, during the rebuild that makes it. Resolves with its index and pid.
 */
function killNextRouterWorker(relay: Relay, tier: 'ingest' | 'encoder'): Promise<{ index: number; pid: number }> {
	return new Promise((resolve) => {
		const listeners: Array<() => void> = [];
		const watch = ({ worker, index }: { worker: ms.Worker; index: number }): void => {
			const onRouter = (router: ms.Router): void => {
				if ((router.appData as { tier?: string }).tier !== tier) return;
				for (const off of listeners) off();
				process.kill(worker.pid, 'SIGKILL');
				resolve({ index, pid: worker.pid });
			};
			worker.observer.on('newrouter', onRouter);
			listeners.push(() => worker.observer.off('newrouter', onRouter));
		};
		for (const slot of relay.pool.liveSlots) watch(slot);
		// A worker that replaces a dead one may take the router too.
		relay.pool.on('workerreplaced', watch);
		listeners.push(() => relay.pool.off('workerreplaced', watch));
	});
}

/** A working broadcast after a rebuild: its routers and workers alive, a new viewer gets video. */
async function expectWorking(fixture: ReturnType<typeof useRelayFixture>, relay: Relay, broadcast: Broadcast): Promise<void> {
	expect(broadcast.closed).toBe(false);
	const { workerIndex, encoderWorkerIndex } = broadcast.stats.ingest;
	for (const index of [workerIndex, encoderWorkerIndex]) expect(relay.pool.slots[index]!.worker.died).toBe(false);
	expect(broadcast.ingestRouter.closed).toBe(false);
	expect(broadcast.encoderRouter.closed).toBe(false);
	expect(broadcast.source('video')?.closed).toBe(false);
	const viewer = await fixture.viewer(broadcast, { audio: false });
	await viewer.waitForFrames(10, 20_000);
	expect(broadcast.reencoder('video')!.stats.running).toBe(true);
}

describe('a worker dying while the pipeline is rebuilt', () => {
	const fixture = useRelayFixture();

	it('the new encoder worker killed during the rebuild: rebuilt again on a live worker, viewers get video', async () => {
		const relay = await fixture.relay({ workers: 3 });
		const broadcast = await relay.createBroadcast({ id: 'kill-during-rebuild', video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		await (await fixture.viewer(broadcast, { audio: false })).waitForFrames(5);
		const firstVictim = broadcast.stats.ingest.encoderWorkerIndex;

		const secondVictim = killNextRouterWorker(relay, 'encoder');
		const firstPid = relay.pool.slots[firstVictim]!.worker.pid;
		process.kill(firstPid, 'SIGKILL');
		const killed = await secondVictim;
		// Maybe the worker that replaced the first victim in its slot: another process either way.
		expect(killed.pid).not.toBe(firstPid);
		const result = await outcome(broadcast, killed.index);
		console.log(`encoder worker ${firstVictim} killed, then ${killed.index} during the rebuild: ${result.kind}; now ${JSON.stringify(broadcast.stats.ingest)}`);

		expect(result.kind).toBe('rebuilt');
		// A slot keeps its index when its worker is replaced: compare processes.
		expect(relay.pool.slots[broadcast.stats.ingest.encoderWorkerIndex]!.worker.pid).not.toBe(killed.pid);
		await expectWorking(fixture, relay, broadcast);
		expect(broadcast.stats.reencoders).toHaveLength(1);
	});

	it('the ingest worker killed twice in a row: an attached producer is piped in again each time, viewers get video', async () => {
		const relay = await fixture.relay({ workers: 3 });
		const app = await startAppProducer();
		try {
			const broadcast = await relay.createBroadcast({ id: 'ingest-twice', video });
			await broadcast.attach({ producer: app.producer, router: app.router });
			await (await fixture.viewer(broadcast, { audio: false })).waitForFrames(5);
			const firstVictim = broadcast.stats.ingest.workerIndex;
			const sourceClosed = vi.fn();
			broadcast.on('sourceclosed', sourceClosed);

			const secondVictim = killNextRouterWorker(relay, 'ingest');
			process.kill(relay.pool.slots[firstVictim]!.worker.pid, 'SIGKILL');
			const killed = await secondVictim;
			const result = await outcome(broadcast, killed.index);
			console.log(`ingest worker ${firstVictim} killed, then ${killed.index} as soon as the new ingest router was made: ${result.kind}; now ${JSON.stringify(broadcast.stats.ingest)}`);

			expect(result.kind).toBe('rebuilt');
			expect(relay.pool.slots[broadcast.stats.ingest.workerIndex]!.worker.pid).not.toBe(killed.pid);
			expect(sourceClosed).not.toHaveBeenCalled();
			await expectWorking(fixture, relay, broadcast);
		} finally {
			await app.close();
		}
	});

	it('a rebuild that fails closes the broadcast after a rebuildfailed event, holding nothing', async () => {
		const relay = await fixture.relay({ workers: 2 });
		const broadcast = await relay.createBroadcast({ id: 'rebuild-fails', video });
		await fixture.broadcaster(broadcast, { ...video, audio: false });
		await (await fixture.viewer(broadcast, { audio: false })).waitForFrames(5);
		// The one fault injected: the re-encoder cannot be started again (as when FFmpeg or its ports are gone).
		const create = vi.spyOn(TrackReencoder, 'create').mockRejectedValueOnce(new Error('injected: FFmpeg would not start'));
		try {
			const victim = broadcast.stats.ingest.encoderWorkerIndex;
			const reencoderPid = broadcast.reencoder('video')!.pid;
			const closedEvent = new Promise<{ id: string }>((resolve) => relay.once('broadcastclosed', resolve));
			process.kill(relay.pool.slots[victim]!.worker.pid, 'SIGKILL');
			const result = await outcome(broadcast, victim);
			expect(result).toMatchObject({ kind: 'rebuildfailed', workerIndex: victim });
			expect(await closedEvent).toEqual({ id: 'rebuild-fails' });
			expect(broadcast.closed).toBe(true);
			expect(relay.broadcasts.has('rebuild-fails')).toBe(false);
			expect(relay.ports.inUse).toBe(0);
			// Only the test broadcaster's FFmpeg is left.
			expect(mediaChildren()).not.toContain(reencoderPid);
			await relay.pool.whenSettled();
			for (const slot of relay.pool.slots) expect((await slot.worker.dump()).routerIds).toEqual([]);
		} finally {
			create.mockRestore();
		}
	});

	it('leaves no FFmpeg behind once the relays above are closed', () => {
		// Runs after the other tests' relays were closed: a re-encoder lost track of in a rebuild would still run.
		const left = mediaChildren();
		// The message names what is left (its start time and arguments).
		expect(left, left.map((pid) => execFileSync('ps', ['-o', 'pid,lstart,args', '-p', String(pid)], { encoding: 'utf8' })).join('')).toEqual([]);
	});
});

/** An application's own mediasoup worker with a VP8 producer fed by FFmpeg's test pattern, for attach(). */
async function startAppProducer(): Promise<{ router: ms.Router; producer: ms.Producer; close(): Promise<void> }> {
	const worker = await mediasoup.createWorker({ rtcMinPort: 52400, rtcMaxPort: 52500 });
	let source: FfmpegProcess | undefined;
	try {
		const router = await worker.createRouter({ mediaCodecs: [{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }] });
		const transport = await router.createPlainTransport({ listenIp: '127.0.0.1', comedia: true, rtcpMux: false });
		const producer = await transport.produce({
			kind: 'video',
			rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000 }], encodings: [{ ssrc: 4242 }] },
		});
		source = new FfmpegProcess({
			binary: resolveFfmpeg().path,
			args: testSourceArgs({
				video: { codec: 'VP8', ...video, threads: 1 },
				videoTarget: { host: '127.0.0.1', rtpPort: transport.tuple.localPort, rtcpPort: transport.rtcpTuple!.localPort, ssrc: 4242, payloadType: 101 },
			}),
			logger: pino({ level: 'silent' }),
		});
		await source.start();
		const started = source;
		return {
			router,
			producer,
			async close() {
				await started.close();
				worker.close();
			},
		};
	} catch (error) {
		await source?.close();
		worker.close();
		throw error;
	}
}

afterEach(() => {
	vi.restoreAllMocks();
});
