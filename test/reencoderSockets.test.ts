/**
 * Issue 9 §1: the re-encoder's FFmpeg bound its RTP/RTCP ports on 0.0.0.0 and
 * took packets from anyone. One RTCP BYE made it end the stream (viewers lost
 * video for seconds, repeatably); a stranger's RTP went into the decoder. Its
 * sockets must be on loopback and hear only the mediasoup transport that feeds it.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ENGINES, sleep, useRelayFixture, type Engine } from './helpers/fixture.js';

interface UdpSocketEntry {
	local: { ip: string; port: number };
	remote: { ip: string; port: number };
}

function hexAddress(hex: string): { ip: string; port: number } {
	const [address, port] = hex.split(':') as [string, string];
	// /proc/net/udp writes IPv4 addresses as one little-endian 32-bit word.
	const bytes = address.match(/../g)!.map((b) => Number.parseInt(b, 16)).reverse();
	return { ip: bytes.join('.'), port: Number.parseInt(port, 16) };
}

/** The IPv4 UDP sockets a process holds, from /proc/<pid>/fd and /proc/net/udp; and whether it holds any IPv6 one. */
async function udpSocketsOf(pid: number): Promise<{ v4: UdpSocketEntry[]; v6: number }> {
	const inodes = new Set<string>();
	for (const fd of await readdir(`/proc/${pid}/fd`)) {
		const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
		const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
		if (inode) inodes.add(inode);
	}
	const rows = async (file: string): Promise<string[][]> =>
		(await readFile(file, 'utf8').catch(() => ''))
			.split('\n')
			.slice(1)
			.map((line) => line.trim().split(/\s+/))
			.filter((cols) => cols.length > 9 && inodes.has(cols[9]!));
	const v4 = (await rows('/proc/net/udp')).map((cols) => ({ local: hexAddress(cols[1]!), remote: hexAddress(cols[2]!) }));
	const v6 = (await rows('/proc/net/udp6')).length;
	return { v4, v6 };
}

async function boundSocket(address: string): Promise<Socket> {
	const socket = createSocket('udp4');
	await new Promise<void>((resolve) => socket.bind(0, address, resolve));
	return socket;
}

function rtcpBye(ssrcs: number[]): Buffer {
	const packet = Buffer.alloc(4 + 4 * ssrcs.length);
	packet[0] = 0x80 | ssrcs.length; // V=2, source count
	packet[1] = 203; // BYE
	packet.writeUInt16BE(ssrcs.length, 2);
	ssrcs.forEach((ssrc, i) => packet.writeUInt32BE(ssrc >>> 0, 4 + 4 * i));
	return packet;
}

function strangerRtp(payloadType: number, ssrc: number, seq: number): Buffer {
	const packet = Buffer.alloc(12 + 800, 0x5a);
	packet[0] = 0x80;
	packet[1] = 0x80 | payloadType; // marker set: "end of a frame" of garbage
	packet.writeUInt16BE(seq & 0xffff, 2);
	packet.writeUInt32BE((seq * 3000) >>> 0, 4);
	packet.writeUInt32BE(ssrc >>> 0, 8);
	return packet;
}

/** A relay re-encoding video and audio, a synthetic broadcaster and a viewer that has had its first keyframe. */
async function liveReencodedBroadcast(fixture: ReturnType<typeof useRelayFixture>, engine: Engine) {
	const relay = await fixture.relay({ workers: 1 });
	const broadcast = await relay.createBroadcast({
		id: 'sockets',
		engine,
		video: { width: 320, height: 180, fps: 30, bitrateKbps: 300, keyframeIntervalSeconds: 1, threads: 1 },
		audio: { reencode: true },
	});
	await fixture.broadcaster(broadcast, { width: 320, height: 180, bitrateKbps: 300 });
	const viewer = await fixture.viewer(broadcast);
	await viewer.waitFor(() => viewer.keyframeTimes.length >= 1, 20_000, 'the first keyframe');
	const reencoders = (await broadcast.getStats()).reencoders;
	expect(reencoders.map((r) => r.kind).sort()).toEqual(['audio', 'video']);
	for (const reencoder of reencoders) expect(reencoder.pid, `${reencoder.kind} re-encoder runs`).toBeTypeOf('number');
	return { broadcast, viewer, reencoders };
}

describe.each(ENGINES)('re-encoder sockets (%s engine): loopback only, and deaf to everyone but the mediasoup transport feeding them', (engine) => {
	const fixture = useRelayFixture();

	it('binds every re-encoder socket (input and output, RTP and RTCP) to loopback', async () => {
		const { reencoders } = await liveReencodedBroadcast(fixture, engine);
		for (const reencoder of reencoders) {
			const sockets = await udpSocketsOf(reencoder.pid!);
			// Input RTP + RTCP and output RTP + RTCP.
			expect(sockets.v4.length, `${reencoder.kind} FFmpeg's UDP sockets`).toBeGreaterThanOrEqual(4);
			expect(sockets.v6, `${reencoder.kind} FFmpeg holds no IPv6 UDP socket`).toBe(0);
			for (const { local } of sockets.v4) expect(local.ip, `${reencoder.kind} FFmpeg socket on port ${local.port}`).toBe('127.0.0.1');
		}
	}, 60_000);

	it("a stranger's RTCP BYE and RTP at the re-encoder's ports neither stop nor disturb it", async () => {
		const { broadcast, viewer, reencoders: before } = await liveReencodedBroadcast(fixture, engine);
		const targets: { ip: string; port: number }[] = [];
		for (const reencoder of before) {
			for (const { local } of (await udpSocketsOf(reencoder.pid!)).v4) targets.push({ ip: '127.0.0.1', port: local.port });
		}
		expect(targets.length).toBeGreaterThanOrEqual(8);

		// Attack every FFmpeg socket of both re-encoders from strangers: a plain local socket, and one
		// on the address the legitimate feed uses (so a filter on the address alone would not do).
		const strangers = [await boundSocket('127.0.0.1'), await boundSocket('127.0.0.2')];
		const consumerSsrcs = [broadcast.reencoder('video')!, broadcast.reencoder('audio')!].map(
			(r) => r.consumer.rtpParameters.encodings![0]!.ssrc!,
		);
		const send = (socket: Socket, packet: Buffer, target: { ip: string; port: number }): Promise<void> =>
			new Promise((resolve) => socket.send(packet, target.port, target.ip, () => resolve()));
		try {
			const framesBefore = viewer.frames;
			for (let round = 0; round < 3; round++) {
				for (const stranger of strangers) {
					for (const target of targets) {
						await send(stranger, rtcpBye(consumerSsrcs), target);
						await send(stranger, rtcpBye([...consumerSsrcs, 1234]), target);
						for (let i = 0; i < 30; i++) await send(stranger, strangerRtp(i % 2 ? 100 : 111, consumerSsrcs[i % 2]!, round * 1000 + i), target);
					}
				}
				await sleep(500);
			}
			await sleep(2000);
			const framesDuring = viewer.frames - framesBefore;
			// 3.5 s at 30 fps: a BYE-induced restart costs seconds of video, so a stall shows.
			expect(framesDuring, 'frames reached the viewer while strangers sent BYEs and RTP').toBeGreaterThan(50);
			const recent = viewer.frameTimes.filter((t) => t > performance.now() - 3500);
			const longestGap = Math.max(...recent.map((t, i) => (i ? t - recent[i - 1]! : 0)));
			expect(longestGap, 'longest gap between frames at the viewer, ms').toBeLessThan(1500);
		} finally {
			for (const stranger of strangers) stranger.close();
		}

		const after = (await broadcast.getStats()).reencoders;
		for (const reencoder of after) {
			const earlier = before.find((r) => r.kind === reencoder.kind)!;
			expect(reencoder.restarts, `${reencoder.kind} re-encoder restarts`).toBe(0);
			expect(reencoder.pid, `${reencoder.kind} FFmpeg is the same process`).toBe(earlier.pid);
			expect(reencoder.running).toBe(true);
		}
	}, 60_000);
});
