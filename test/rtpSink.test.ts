import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { nativeSinkBinary } from '../src/harness/nativeSink.js';
import { RtpSink } from '../src/harness/RtpSink.js';

function rtp(ssrc: number, seq: number, payloadType = 96): Buffer {
	const packet = Buffer.alloc(100);
	packet[0] = 0x80;
	packet[1] = payloadType;
	packet.writeUInt16BE(seq & 0xffff, 2);
	packet.writeUInt32BE(ssrc, 8);
	return packet;
}

describe('load-test RTP sink: counts packets and gaps per SSRC', () => {
	it('builds the C sink here (a C compiler is part of setup)', () => {
		expect(nativeSinkBinary()).toMatch(/rtp-sink-/);
	});

	for (const native of [true, false]) {
		it(`${native ? 'C (recvmmsg)' : 'Node'} sink: packets, bytes, losses across a sequence wrap, RTCP ignored, reset`, async () => {
			const sink = await RtpSink.start({ native });
			const sender = createSocket('udp4');
			try {
				expect(sink.kind).toBe(native ? 'native' : 'node');
				const sends: Buffer[] = [];
				// SSRC 1: 65530..65535, 0..9 with 3 and 4 missing (2 lost across the wrap).
				for (let seq = 65530; seq < 65536 + 10; seq++) if (seq !== 65536 + 3 && seq !== 65536 + 4) sends.push(rtp(1, seq));
				// SSRC 2: 10 in a row; an RTCP packet (PT 200 on a muxed port) is not counted.
				for (let seq = 100; seq < 110; seq++) sends.push(rtp(2, seq));
				sends.push(rtp(2, 0, 200 & 0x7f));
				for (const packet of sends) await new Promise<void>((resolve) => sender.send(packet, sink.port, '127.0.0.1', () => resolve()));
				await new Promise((resolve) => setTimeout(resolve, 200));
				const streams = (await sink.report()).sort((a, b) => a.ssrc - b.ssrc);
				expect(streams.map(({ ssrc, packets, bytes, lost }) => ({ ssrc, packets, bytes, lost }))).toEqual([
					{ ssrc: 1, packets: 14, bytes: 1400, lost: 2 },
					{ ssrc: 2, packets: 10, bytes: 1000, lost: 0 },
				]);
				await sink.reset();
				expect(await sink.report()).toEqual([]);
			} finally {
				sender.close();
				await sink.close();
			}
		});
	}
});
