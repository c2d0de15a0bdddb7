import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AvOffsetProbe, ClickDetector, clickOnsets } from '../src/harness/AvOffsetProbe.js';
import { DecodabilityTracker } from '../src/harness/decodability.js';
import { CpuMeter } from '../src/harness/procStats.js';
import { ensureClickClip, ensureClip, ensureOpusClip } from '../src/harness/fixtures.js';
import type { WeriftViewer } from '../src/harness/WeriftViewer.js';
import { isIdr, nalType, packetizeH264, readH264AccessUnits, splitAnnexB } from '../src/harness/h264.js';
import { readIvf, isVp8Keyframe } from '../src/harness/ivf.js';
import { LossyProxy, seededRandom } from '../src/harness/LossyProxy.js';
import { readOggOpusPackets } from '../src/harness/ogg.js';
import { SyntheticBroadcaster } from '../src/harness/SyntheticBroadcaster.js';
import { percentiles } from '../src/harness/bench.js';
import { sleep, useRelayFixture } from './helpers/fixture.js';

const small = { width: 320, height: 180, fps: 15, bitrateKbps: 300, seconds: 10 };

describe('harness fixtures and packetizers', () => {
	it('VP8 clip: one keyframe in the normal encoding, every frame a keyframe in the intra one', () => {
		const clip = ensureClip(small);
		const normal = readIvf(clip.normal).frames;
		const intra = readIvf(clip.intra).frames;
		expect(normal).toHaveLength(150);
		expect(intra).toHaveLength(150);
		expect(normal.filter(isVp8Keyframe)).toHaveLength(1);
		expect(intra.every(isVp8Keyframe)).toBe(true);
	});

	it('H264 clip: access units split on delimiters, IDR only at the start of the normal encoding; FU-A keeps every byte', () => {
		const clip = ensureClip({ ...small, codec: 'H264' });
		const normal = readH264AccessUnits(clip.normal);
		const intra = readH264AccessUnits(clip.intra);
		expect(normal).toHaveLength(150);
		expect(normal.filter(isIdr)).toHaveLength(1);
		expect(intra.every(isIdr)).toBe(true);
		const unit = intra[10]!;
		const payloads = packetizeH264(unit, 500);
		expect(payloads.every((p) => p.length <= 500)).toBe(true);
		// Reassemble FU-A fragments and compare with the original NAL units.
		const rebuilt: Buffer[] = [];
		for (const p of payloads) {
			if (nalType(p) !== 28) rebuilt.push(p);
			else if (p[1]! & 0x80) rebuilt.push(Buffer.concat([Buffer.from([(p[0]! & 0xe0) | (p[1]! & 0x1f)]), p.subarray(2)]));
			else rebuilt[rebuilt.length - 1] = Buffer.concat([rebuilt.at(-1)!, p.subarray(2)]);
		}
		expect(rebuilt).toEqual(unit);
		expect(splitAnnexB(Buffer.from([0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2]))).toEqual([Buffer.from([0x67, 1]), Buffer.from([0x68, 2])]);
	});

	it('Opus clip: 20 ms packets, headers left out', () => {
		const packets = readOggOpusPackets(ensureOpusClip(2));
		expect(packets.length).toBeGreaterThanOrEqual(99);
		expect(packets.length).toBeLessThanOrEqual(101);
		expect(packets.some((p) => p.subarray(0, 4).toString() === 'Opus')).toBe(false);
	});

	it('click clip: the detector finds one click a second, in the packet of its media time, and nothing in a steady tone', () => {
		const packets = readOggOpusPackets(ensureClickClip({ seconds: 10, fps: 15, clickEveryFrames: 15 }));
		const sizes = packets.map((p) => p.length);
		// Click k at media time k s, i.e. 48000·k samples: packet 50·k (each holds 20 ms; the encoder's 2.5 ms pre-skip keeps it there).
		expect(clickOnsets(sizes.slice(0, 500), { looped: true })).toEqual([0, 50, 100, 150, 200, 250, 300, 350, 400, 450]);
		// Streamed from the middle of a click's loud tail, as a viewer joining late hears it: the next clicks only.
		const detector = new ClickDetector();
		const heard = sizes.slice(105, 320).flatMap((size, i) => (detector.push(size) ? [105 + i] : []));
		expect(heard).toEqual([150, 200, 250, 300]);
		// A 440 Hz tone is loud all along: no onset.
		expect(clickOnsets(readOggOpusPackets(ensureOpusClip(2)).map((p) => p.length))).toEqual([]);
		expect(() => ensureClickClip({ seconds: 10, fps: 30, clickEveryFrames: 1 })).toThrow(/multiple of 0.02 s/);
	});

	it('synthetic broadcaster loops audio at the video clip\'s length (the Ogg file has one packet more)', async () => {
		const clip = ensureClip(small);
		const audio = ensureClickClip({ seconds: 10, fps: 15, clickEveryFrames: 15 });
		expect(readOggOpusPackets(audio)).toHaveLength(501);
		const broadcaster = new SyntheticBroadcaster({ clip, audio, fps: 15 });
		try {
			expect(broadcaster.audioClipPackets).toHaveLength(500);
		} finally {
			await broadcaster.close();
		}
	});

	it('A/V offset: a click heard 40 ms after its frame was seen reads +40, less what the broadcaster sent them apart', () => {
		const clipFrames = 150;
		const audioSizes = Array.from({ length: 500 }, (_, i) => (i % 50 === 0 ? 200 : 3));
		// Sent on one timeline from t = 1000: frame n at 1000 + n/15 s, packet m at 1000 + 20 m, the audio 2 ms late.
		const broadcaster = {
			clipFrames,
			audioClipPackets: audioSizes.map((size) => Buffer.alloc(size)),
			audioPacketsSent: 1000,
			audioPacketSentAt: (m: number) => (m < 1000 ? 1000 + 20 * m + 2 : Number.NaN),
			videoFrameSentAt: (n: number) => (n < 300 ? 1000 + (n * 1000) / 15 : Number.NaN),
		};
		// The viewer hears every packet 50 ms after it was sent and gets every frame 10 ms after it was sent.
		const viewer = { audioArrivals: Array.from({ length: 1000 }, (_, m) => ({ at: broadcaster.audioPacketSentAt(m) + 50, size: audioSizes[m % 500]! })) };
		const probe = { arrivals: Array.from({ length: 300 }, (_, n) => ({ index: n % clipFrames, at: broadcaster.videoFrameSentAt(n) + 10 })) };
		const av = new AvOffsetProbe({
			broadcaster: broadcaster as never,
			viewer: viewer as unknown as WeriftViewer,
			frames: probe,
			clickEveryFrames: 15,
		});
		const offsets = av.offsets();
		// The first click (t = 1000) has no silence before it; the other 19 of two loops are measured, the second loop's against its own frames.
		expect(offsets).toHaveLength(19);
		for (const offset of offsets) expect(offset).toBeCloseTo(40, 6);
		expect(av.offsets(1000 + 10_000)).toHaveLength(10);
		// An audio clip without one click per 15 frames is refused.
		expect(() => new AvOffsetProbe({ broadcaster: { ...broadcaster, audioClipPackets: [Buffer.alloc(3)] } as never, viewer: viewer as unknown as WeriftViewer, frames: probe, clickEveryFrames: 15 })).toThrow(/click clip/);
	});

	it('decodable frames: whole and chained to a keyframe; a lost packet or marker breaks the chain until the next keyframe', () => {
		// Frames as [timestamp, packets, keyframe]; `drop` lists sequence numbers that never arrive.
		const run = (frames: Array<[number, number, boolean]>, drop: number[] = [], firstSequence = 0): number[] => {
			const tracker = new DecodabilityTracker();
			const decodable: number[] = [];
			let sequence = firstSequence;
			for (const [timestamp, packets, keyframe] of frames) {
				for (let i = 0; i < packets; i++, sequence = (sequence + 1) & 0xffff) {
					if (drop.includes(sequence)) continue;
					const last = i === packets - 1;
					if (tracker.push({ sequence, timestamp, marker: last, frameStart: i === 0, keyframeStart: keyframe && i === 0 }) && last) decodable.push(timestamp);
				}
			}
			return decodable;
		};
		const gop: Array<[number, number, boolean]> = [[0, 1, false], [1, 3, true], [2, 2, false], [3, 2, false], [4, 2, false], [5, 3, true], [6, 2, false]];
		// Nothing before the first keyframe; everything after it (and across a sequence-number wrap).
		expect(run(gop)).toEqual([1, 2, 3, 4, 5, 6]);
		expect(run(gop, [], 65_530)).toEqual([1, 2, 3, 4, 5, 6]);
		// Sequence numbers: frame 0 → 0; 1 → 1-3; 2 → 4-5; 3 → 6-7; 4 → 8-9; 5 → 10-12; 6 → 13-14.
		// A lost middle packet of the keyframe: nothing until the next keyframe.
		expect(run(gop, [2])).toEqual([5, 6]);
		// A lost first packet of a delta frame: it and the rest of the GOP are lost.
		expect(run(gop, [6])).toEqual([1, 2, 5, 6]);
		// A lost marker (last packet) of frame 2: frame 2 never completes, frame 3 follows a broken chain.
		expect(run(gop, [5])).toEqual([1, 5, 6]);
		// A gap just before a keyframe (the last packet of frame 4 lost) costs frame 4 only.
		expect(run(gop, [9])).toEqual([1, 2, 3, 5, 6]);
	});

	it('seeded randomness repeats; percentiles; the proxy rewrites only the UDP candidate', () => {
		const a = seededRandom(7);
		const b = seededRandom(7);
		expect([a(), a(), a()]).toEqual([b(), b(), b()]);
		expect(percentiles([5, 1, 4, 2, 3])).toEqual({ p50: 3, p95: 5, samples: 5 });
		const answer = 'm=video 40001 UDP/TLS/RTP/SAVPF 96\r\na=candidate:udp 1 udp 1076302079 127.0.0.1 40001 typ host\r\na=candidate:tcp 1 tcp 1076302079 127.0.0.1 40002 typ host tcptype passive\r\n';
		expect(LossyProxy.targetOf(answer)).toEqual({ ip: '127.0.0.1', port: 40001 });
		expect(LossyProxy.redirectAnswer(answer, 5555)).toBe('m=video 5555 UDP/TLS/RTP/SAVPF 96\r\na=candidate:udp 1 udp 1076302079 127.0.0.1 5555 typ host\r\n');
	});
});

describe('synthetic broadcaster', () => {
	const fixture = useRelayFixture();

	it('publishes H264 and Opus over WebRTC and answers a keyframe request with a keyframe', async () => {
		const relay = await fixture.relay();
		const broadcast = await relay.createBroadcast({ id: 'synthetic', mode: 'baseline' });
		const broadcaster = new SyntheticBroadcaster({ clip: ensureClip({ ...small, codec: 'H264' }), audio: ensureOpusClip(10), fps: small.fps });
		try {
			await broadcaster.connect(async (offer) => (await broadcast.publish(offer)).answer);
			broadcaster.start();
			const viewer = await fixture.viewer(broadcast, { codec: 'H264' });
			await viewer.waitFor(() => viewer.keyframeTimes.length >= 1 && viewer.frames > 15 && viewer.audioPackets > 20, 15_000, 'H264 frames and Opus');
			// The viewer's arrival made mediasoup ask the broadcaster for a keyframe, which it sent.
			expect(broadcaster.keyframeRequests).toBeGreaterThanOrEqual(1);
			expect(broadcaster.requestedKeyframesSent).toBeGreaterThanOrEqual(1);
			const before = broadcaster.requestedKeyframesSent;
			await viewer.sendPli();
			await viewer.waitFor(() => broadcaster.requestedKeyframesSent > before, 5000, 'a keyframe for the PLI');
			expect(broadcaster.steadyBitrate).toBeGreaterThan(100_000);
		} finally {
			await broadcaster.close();
		}
	});
});

describe('CPU meter', () => {
	const busy = (): ChildProcess => spawn(process.execPath, ['-e', 'const end = Date.now() + 10000; while (Date.now() < end) {}'], { stdio: 'ignore' });
	const kill = async (child: ChildProcess): Promise<void> => {
		if (child.exitCode !== null || child.signalCode !== null) return;
		child.kill('SIGKILL');
		await once(child, 'exit');
	};

	it('a metered process that dies reads as what it used, never as negative CPU', async () => {
		const child = busy();
		try {
			await sleep(500); // it has used CPU before the meter starts
			const meter = new CpuMeter();
			meter.start([child.pid!]);
			await kill(child); // /proc now has nothing for it: a naive meter subtracts its earlier CPU from 0
			expect(meter.read()).toBeGreaterThanOrEqual(0);
		} finally {
			await kill(child);
		}
	});

	it('follows a process that is killed and restarted: both count', async () => {
		let current = busy();
		const children = [current];
		try {
			const meter = new CpuMeter();
			meter.start(() => (current.exitCode === null && current.signalCode === null ? [current.pid!] : []));
			await sleep(400);
			meter.sample();
			await kill(current);
			current = busy();
			children.push(current);
			await sleep(400);
			const cores = meter.read();
			expect(meter.processes).toBe(2);
			expect(cores).toBeGreaterThan(0);
		} finally {
			await Promise.all(children.map(kill));
		}
	});
});

