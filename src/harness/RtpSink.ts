import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { nativeSinkBinary } from './nativeSink.js';

/** What the sink saw of one SSRC (one consumer). */
export interface SinkStream {
	ssrc: number;
	packets: number;
	bytes: number;
	/** Packets the sequence numbers say should have arrived and did not. */
	lost: number;
	/** Date.now() of the first packet. */
	firstAt: number;
}

// Runs in its own process so counting thousands of streams never competes with the relay's event loop.
// SRTP leaves the RTP header in the clear: SSRC and sequence number are readable without the key.
const SINK_SOURCE = `
const dgram = require('node:dgram');
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 16 * 1024 * 1024 });
const streams = new Map();
socket.on('message', (msg) => {
  if (msg.length < 12 || (msg[0] >> 6) !== 2) return;
  const pt = msg[1] & 0x7f;
  if (pt >= 72 && pt <= 79) return; // RTCP on a muxed port
  const seq = msg.readUInt16BE(2);
  const ssrc = msg.readUInt32BE(8);
  let s = streams.get(ssrc);
  if (!s) { s = { ssrc, packets: 0, bytes: 0, base: seq, cycles: 0, max: seq, firstAt: Date.now() }; streams.set(ssrc, s); }
  s.packets++; s.bytes += msg.length;
  const delta = (seq - s.max + 65536) % 65536;
  if (delta > 0 && delta < 32768) { if (seq < s.max) s.cycles += 65536; s.max = seq; }
});
socket.bind(0, '127.0.0.1', () => process.send({ type: 'ready', port: socket.address().port }));
process.on('message', (m) => {
  if (m.type === 'report') {
    const out = [];
    for (const s of streams.values()) {
      const expected = s.cycles + s.max - s.base + 1;
      out.push({ ssrc: s.ssrc, packets: s.packets, bytes: s.bytes, lost: Math.max(0, expected - s.packets), firstAt: s.firstAt });
    }
    process.send({ type: 'report', id: m.id, streams: out });
  } else if (m.type === 'reset') { streams.clear(); process.send({ type: 'reset', id: m.id }); }
});
process.on('disconnect', () => process.exit(0));
`;

/**
 * One UDP socket in a child process that receives every load-test viewer's
 * SRTP and counts packets and losses per SSRC without decrypting: the C sink
 * (nativeSink.ts: recvmmsg, 64 datagrams a system call) where a C compiler is
 * there, else a Node process.
 */
export class RtpSink {
	readonly port: number;
	/** "native" (C, recvmmsg) or "node". */
	readonly kind: 'native' | 'node';
	readonly #child: ChildProcess;
	#nextId = 0;
	/** Native sink: replies in the order the commands were written. */
	readonly #replies: Array<(line: string) => void> = [];

	private constructor(child: ChildProcess, port: number, kind: 'native' | 'node') {
		this.#child = child;
		this.port = port;
		this.kind = kind;
	}

	static async start(options: { native?: boolean } = {}): Promise<RtpSink> {
		const binary = options.native === false ? undefined : nativeSinkBinary();
		if (binary) {
			const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
			const lines = createInterface({ input: child.stdout! });
			const ready = await new Promise<string>((resolve, reject) => {
				lines.once('line', resolve);
				child.once('exit', (code) => reject(new Error(`the native RTP sink exited with ${code} before it was ready`)));
			});
			const sink = new RtpSink(child, Number(ready.split(' ')[1]), 'native');
			lines.on('line', (line) => sink.#replies.shift()?.(line));
			return sink;
		}
		const child = spawn(process.execPath, ['-e', SINK_SOURCE], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
		const [message] = (await once(child, 'message')) as [{ type: string; port: number }];
		return new RtpSink(child, message.port, 'node');
	}

	async #ask<T>(type: string): Promise<T> {
		if (this.kind === 'native') {
			const line = await new Promise<string>((resolve) => {
				this.#replies.push(resolve);
				this.#child.stdin!.write(`${type}\n`);
			});
			return (type === 'report' ? JSON.parse(line) : {}) as T;
		}
		const id = this.#nextId++;
		const reply = new Promise<T>((resolve) => {
			const onMessage = (message: { id: number } & T): void => {
				if (message.id !== id) return;
				this.#child.off('message', onMessage);
				resolve(message);
			};
			this.#child.on('message', onMessage);
		});
		this.#child.send({ type, id });
		return reply;
	}

	/** The sink process's pid (the CPU-starved scenario pins it away from the re-encoder's core). */
	get pid(): number | undefined {
		return this.#child.pid;
	}

	async report(): Promise<SinkStream[]> {
		return (await this.#ask<{ streams: SinkStream[] }>('report')).streams;
	}

	async reset(): Promise<void> {
		await this.#ask('reset');
	}

	async close(): Promise<void> {
		if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
		const exited = once(this.#child, 'exit');
		if (this.kind === 'native') this.#child.stdin!.end();
		else this.#child.disconnect();
		await exited;
	}
}
