import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/**
 * A VP8 sender as GStreamer users publish: `videotestsrc ! vp8enc ! rtpvp8pay`,
 * sending plain RTP to one address. rtpvp8pay's default picture-id-mode is
 * "none": its payload descriptors carry no extended bits (RFC 7741 makes them
 * optional), which mediasoup 3.12.16's worker could not parse.
 */
export interface GstVp8SenderOptions {
	host: string;
	port: number;
	ssrc: number;
	payloadType: number;
	/** rtpvp8pay picture-id-mode. Default "none". */
	pictureIdMode?: 'none' | '7-bit' | '15-bit';
	/** Stop after this many frames (GStreamer's num-buffers). Default: run until closed. */
	frames?: number;
	/** Default 15. */
	fps?: number;
	/** Keyframe every this many frames. Default 15. */
	keyframeDistance?: number;
}

/** Fails with what to install when gst-launch-1.0 or the plugins the sender needs are missing. */
export function assertGstreamerAvailable(): void {
	for (const element of ['videotestsrc', 'vp8enc', 'rtpvp8pay', 'udpsink']) {
		const probe = spawnSync('gst-inspect-1.0', ['--exists', element], { stdio: 'ignore' });
		if (probe.error || probe.status !== 0) {
			throw new Error(
				`GStreamer element ${element} is missing: run scripts/setup.sh, or apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good`,
			);
		}
	}
}

/** One gst-launch-1.0 child; the test that starts it closes it. */
export class GstVp8Sender {
	readonly #options: GstVp8SenderOptions;
	#child?: ChildProcess;
	#exited?: Promise<number | null>;
	#stderr = '';

	constructor(options: GstVp8SenderOptions) {
		this.#options = options;
	}

	/** Resolves once gst-launch-1.0 is running; rejects if it cannot be spawned. */
	async start(): Promise<void> {
		const { host, port, ssrc, payloadType, pictureIdMode = 'none', frames, fps = 15, keyframeDistance = 15 } = this.#options;
		const pipeline = [
			'videotestsrc', 'is-live=true', 'pattern=ball', ...(frames !== undefined ? [`num-buffers=${frames}`] : []), '!',
			`video/x-raw,width=320,height=240,framerate=${fps}/1`, '!',
			'vp8enc', 'deadline=1', 'cpu-used=8', 'threads=1', 'target-bitrate=300000', `keyframe-max-dist=${keyframeDistance}`, '!',
			'rtpvp8pay', `picture-id-mode=${pictureIdMode}`, `pt=${payloadType}`, `ssrc=${ssrc}`, '!',
			'udpsink', `host=${host}`, `port=${port}`, 'sync=false',
		];
		const child = spawn('gst-launch-1.0', ['-q', ...pipeline], { stdio: ['ignore', 'ignore', 'pipe'] });
		this.#child = child;
		child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
			this.#stderr = (this.#stderr + chunk).slice(-4000);
		});
		this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
		await new Promise<void>((resolve, reject) => {
			child.once('spawn', resolve);
			child.once('error', (error) => reject(new Error(`gst-launch-1.0 did not start: ${error.message}`)));
		});
		child.on('error', () => undefined);
	}

	/** What gst-launch-1.0 wrote to stderr (last 4 kB), for failure messages. */
	get stderr(): string {
		return this.#stderr;
	}

	/** Resolves with the exit code when gst-launch-1.0 ends by itself (num-buffers reached). */
	async exited(): Promise<number | null> {
		return (await this.#exited) ?? null;
	}

	/** SIGTERM, SIGKILL after 2 s, and waits for the exit. Safe to call twice. */
	async close(): Promise<void> {
		const child = this.#child;
		if (!child || child.exitCode !== null || child.signalCode !== null) return;
		child.kill('SIGTERM');
		const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
		await this.#exited;
		clearTimeout(timer);
	}
}
