import { spawn, type ChildProcess } from 'node:child_process';
import type { Broadcast } from '../Broadcast.js';
import { barcodeReaderArgs } from '../ffmpeg/args.js';
import { ffmpegInputSdp } from '../ffmpeg/inputSdp.js';
import type { PortPair, PortPool } from '../ports/PortPool.js';
import { waitForUdpBind } from '../ports/waitForUdpBind.js';
import type { Viewer } from '../viewers/Viewer.js';
import { BARCODE_BITS } from './fixtures.js';

/**
 * Measures when each broadcaster frame reaches a viewer: a plain-RTP viewer
 * on the fan-out feeds an FFmpeg that decodes the video and reads the frame
 * number the fixture draws as a barcode. latency = arrival − broadcaster's
 * send time of that frame. The probe's own decoding is in both modes, so the
 * relay-minus-baseline difference is what the re-encoder adds.
 */
export class LatencyProbe {
	/** End-to-end latencies (ms), one per frame seen. */
	readonly latencies: number[] = [];
	framesSeen = 0;
	/** Each frame counted in `latencies`: its clip frame index and when it came out of the decoder (performance.now()). */
	readonly arrivals: Array<{ index: number; at: number }> = [];
	readonly #child: ChildProcess;
	readonly #viewer: Viewer;
	readonly #ports: PortPool;
	readonly #pair: PortPair;

	private constructor(child: ChildProcess, viewer: Viewer, ports: PortPool, pair: PortPair) {
		this.#child = child;
		this.#viewer = viewer;
		this.#ports = ports;
		this.#pair = pair;
	}

	static async start(options: {
		broadcast: Broadcast;
		ports: PortPool;
		ffmpegPath: string;
		sentAt: (frameIndex: number) => number;
		clipFrames: number;
	}): Promise<LatencyProbe> {
		const { broadcast, ports, ffmpegPath, sentAt, clipFrames } = options;
		const pair = await ports.acquire();
		let viewer: Viewer | undefined;
		try {
			viewer = await broadcast.addPlainViewer({ remote: { ip: '127.0.0.1', port: pair.rtp, rtcpPort: pair.rtcp }, kinds: ['video'] });
			const sdp = ffmpegInputSdp(viewer.consumers[0]!.rtpParameters, '127.0.0.1', pair.rtp);
			const child = spawn(
				ffmpegPath,
				barcodeReaderArgs({ barcodeBits: BARCODE_BITS }),
				{ stdio: ['pipe', 'pipe', 'ignore'] },
			);
			child.stdin!.end(sdp);
			const probe = new LatencyProbe(child, viewer, ports, pair);
			let pending = Buffer.alloc(0);
			let lastIndex = -1;
			child.stdout!.on('data', (chunk: Buffer) => {
				const now = performance.now();
				pending = Buffer.concat([pending, chunk]);
				while (pending.length >= BARCODE_BITS) {
					let index = 0;
					for (let bit = 0; bit < BARCODE_BITS; bit++) if (pending[bit]! > 127) index |= 1 << bit;
					pending = pending.subarray(BARCODE_BITS);
					probe.framesSeen += 1;
					// A barcode misread (decoding artefacts) would match some other frame's send time: count a
					// frame only when it follows the previous one within a few frames, as real frames do.
					const step = lastIndex < 0 ? -1 : (index - lastIndex + clipFrames) % clipFrames;
					lastIndex = index;
					if (step < 1 || step > 5) continue;
					const latency = now - sentAt(index % clipFrames);
					if (Number.isFinite(latency) && latency >= 0 && latency < 2000) {
						probe.latencies.push(latency);
						probe.arrivals.push({ index: index % clipFrames, at: now });
					}
				}
			});
			// No keyframe request of its own beyond mediasoup's at consume time: in baseline mode it
			// would reach the synthetic broadcaster, whose answer (an intra frame spliced into a long-GOP
			// stream) decodes with drift until the clip's own keyframe. The probe starts from the next
			// natural keyframe instead, and the sequence check above discards misread frames.
			await waitForUdpBind(pair.rtp, 5000);
			return probe;
		} catch (error) {
			viewer?.close();
			ports.release(pair);
			throw error;
		}
	}

	/** The decoding FFmpeg's pid (the CPU-starved scenario pins it away from the re-encoder's core). */
	get pid(): number | undefined {
		return this.#child.pid;
	}

	async close(): Promise<void> {
		this.#viewer.close();
		if (this.#child.exitCode === null && this.#child.signalCode === null) {
			const exited = new Promise((resolve) => this.#child.once('exit', resolve));
			this.#child.kill('SIGKILL');
			await exited;
		}
		this.#ports.release(this.#pair);
	}
}
