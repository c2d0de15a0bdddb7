/**
 * The isolated saturation ramp (issue 13 §2): how many SRTP consumers one
 * mediasoup worker carries, measured so that the figure is the worker's and not
 * the machine's. The measured worker is pinned to one core and everything else
 * (Node, the FFmpeg source and re-encoder, the RTP sink) to another, with
 * `taskset`. Consumers are added step by step until the sink sees more than
 * `lossThreshold` % loss or the worker's core passes `cpuThreshold` %.
 *
 * One run ramps, side by side, for each bitrate:
 * - each worker build (`builds`: OpenSSL-backed SRTP, Debian's NSS one), through
 *   the relay (consumers of the re-encoder's output, behind the relay's pipes), and
 * - raw mediasoup on the same build: a producer fed by the same FFmpeg source,
 *   consumed directly on one router, no relay objects at all,
 * so the relay's own overhead and the SRTP engine's share are both visible.
 *
 * mediasoup picks its worker binary from MEDIASOUP_WORKER_BIN when it is first
 * loaded, so each ramp runs in a child Node process (this module, run as a
 * script) with its build's binary. Run it from the build (dist/):
 *
 *   node dist/harness/saturation.js --smoke            # ~2 minutes, keeps it working
 *   node dist/harness/saturation.js --out bench-results/saturation
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** One worker binary to measure. */
export interface WorkerBuild {
	/** Label in the report, e.g. "openssl" or "nss". */
	name: string;
	/** Path of the mediasoup-worker binary (what MEDIASOUP_WORKER_BIN would be). */
	workerBin: string;
}

export type RampSource = 'relay' | 'raw';

export interface IsolatedSaturationOptions {
	smoke: boolean;
	/** Consumer bitrates to ramp at, kbit/s (the source and the re-encoder use each in turn). */
	bitratesKbps: number[];
	video: { width: number; height: number; fps: number };
	keyframeIntervalSeconds: number;
	builds: WorkerBuild[];
	sources: RampSource[];
	/** Consumers added per step, seconds measured per step, the most to try. */
	step: number;
	stepSeconds: number;
	maxConsumers: number;
	/** Loss (percent of packets) and worker CPU (percent of its core) that end the ramp. */
	lossThreshold: number;
	cpuThreshold: number;
	/** CPU the measured worker is pinned to, and the CPU(s) everything else is pinned to (taskset lists). */
	cores: { worker: string; rest: string };
}

export interface IsolatedStep {
	consumers: number;
	lossPercent: number;
	workerCpuPercent: number;
	/** Per consumer, as the sink received it. */
	packetsPerSecond: number;
	kbps: number;
}

export interface IsolatedRamp {
	build: string;
	source: RampSource;
	bitrateKbps: number;
	steps: IsolatedStep[];
	/** Most consumers with loss and the worker's CPU under the thresholds. */
	consumersAtSaturation: number;
	limitedBy: 'loss' | 'cpu' | 'max-tried' | 'error';
	/** Packets per second the worker sent at that step, all consumers together. */
	packetsPerSecondAtSaturation: number;
	error?: string;
}

export interface IsolatedSaturationReport {
	date: string;
	machine: { cpus: number; model: string; node: string };
	options: IsolatedSaturationOptions;
	ramps: IsolatedRamp[];
}

const here = dirname(fileURLToPath(import.meta.url));
const projectRoot = resolve(here, '..', '..');

/** The two builds scripts/build-mediasoup-worker.sh makes (those present are measured). */
export function defaultWorkerBuilds(root = projectRoot): WorkerBuild[] {
	const release = join(root, 'node_modules', 'mediasoup', 'worker', 'out', 'Release');
	return [
		{ name: 'openssl', workerBin: join(release, 'mediasoup-worker') },
		{ name: 'nss', workerBin: join(release, 'mediasoup-worker-nss') },
	].filter((b) => existsSync(b.workerBin));
}

export function defaultIsolatedSaturationOptions(smoke: boolean): IsolatedSaturationOptions {
	const base = {
		smoke,
		keyframeIntervalSeconds: 2,
		builds: defaultWorkerBuilds(),
		sources: ['relay', 'raw'] as RampSource[],
		lossThreshold: 0.5,
		cpuThreshold: 90,
		cores: { worker: '0', rest: cpus().length > 2 ? `1-${cpus().length - 1}` : '1' },
	};
	return smoke
		? { ...base, keyframeIntervalSeconds: 1, bitratesKbps: [300], video: { width: 320, height: 180, fps: 15 }, step: 10, stepSeconds: 1.5, maxConsumers: 20 }
		: { ...base, bitratesKbps: [1500, 600], video: { width: 1280, height: 720, fps: 30 }, step: 100, stepSeconds: 4, maxConsumers: 2000 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pins every thread of a process to the given CPUs. */
function pin(pid: number, cpuList: string): void {
	execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
}

/** Runs every ramp, one child process each, one after the other. */
export async function runIsolatedSaturation(
	options: IsolatedSaturationOptions,
	onProgress?: (label: string) => void,
): Promise<IsolatedSaturationReport> {
	if (options.builds.length === 0) throw new Error('no worker build to measure: run scripts/build-mediasoup-worker.sh (and BROADCAST_RELAY_SRTP=nss for the NSS one)');
	if (cpus().length < 2) throw new Error('the isolated ramp needs 2 CPUs: one for the worker, one for everything else');
	const entry = fileURLToPath(import.meta.url);
	if (!entry.endsWith('.js')) throw new Error('run the isolated ramp from the build (node dist/harness/saturation.js): each ramp is a child Node process');
	const ramps: IsolatedRamp[] = [];
	for (const bitrateKbps of options.bitratesKbps) {
		for (const source of options.sources) {
			for (const build of options.builds) {
				onProgress?.(`${bitrateKbps} kbit/s · ${source} · ${build.name}`);
				ramps.push(await runRampInChild(entry, { ...options, bitrateKbps, source, build }));
			}
		}
	}
	return {
		date: new Date().toISOString(),
		machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
		options,
		ramps,
	};
}

type RampJob = IsolatedSaturationOptions & { bitrateKbps: number; source: RampSource; build: WorkerBuild };

async function runRampInChild(entry: string, job: RampJob): Promise<IsolatedRamp> {
	const child = spawn(process.execPath, [entry, '--ramp-child'], {
		stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
		env: { ...process.env, MEDIASOUP_WORKER_BIN: job.build.workerBin },
	});
	const exited = once(child, 'exit');
	let result: IsolatedRamp | undefined;
	child.on('message', (message: { type: string; ramp?: IsolatedRamp }) => {
		if (message.type === 'ramp') result = message.ramp;
	});
	child.send({ type: 'job', job });
	await exited;
	return (
		result ?? {
			build: job.build.name, source: job.source, bitrateKbps: job.bitrateKbps, steps: [],
			consumersAtSaturation: 0, limitedBy: 'error', packetsPerSecondAtSaturation: 0, error: `ramp process exited with ${child.exitCode ?? child.signalCode}`,
		}
	);
}

/** In the child: one ramp, on one worker build, from one source. */
async function rampInChild(job: RampJob): Promise<IsolatedRamp> {
	// Node and whatever it spawns from now on (FFmpeg, the sink) on the other core(s).
	pin(process.pid, job.cores.rest);
	const { pino } = await import('pino');
	const { RtpSink } = await import('./RtpSink.js');
	const { CpuMeter } = await import('./procStats.js');
	const { testSourceArgs } = await import('../ffmpeg/args.js');
	const { FfmpegProcess } = await import('../ffmpeg/FfmpegProcess.js');
	const { resolveFfmpeg } = await import('../ffmpeg/binary.js');
	const logger = pino({ level: 'silent' });
	const ssrc = 0x5a7e0001;
	const payloadType = 101;
	const video = { codec: 'VP8' as const, ...job.video, bitrateKbps: job.bitrateKbps, keyframeIntervalSeconds: job.keyframeIntervalSeconds, threads: 1 };
	const cleanups: Array<() => Promise<void> | void> = [];
	const sink = await RtpSink.start();
	cleanups.push(() => sink.close());
	const steps: IsolatedStep[] = [];
	let limitedBy: IsolatedRamp['limitedBy'] = 'max-tried';
	try {
		let workerPid: number;
		let addConsumer: () => Promise<void>;
		let sendTo: { host: string; rtpPort: number; rtcpPort: number };
		let ready: () => boolean;
		if (job.source === 'relay') {
			const { createRelay } = await import('../Relay.js');
			const relay = await createRelay({ workers: 1, logger, consumersPerWorker: job.maxConsumers + 10, consumersPerRouter: job.maxConsumers + 10 });
			cleanups.unshift(() => relay.close());
			workerPid = relay.pool.slots[0]!.worker.pid;
			const broadcast = await relay.createBroadcast({ id: 'isolated-saturation', mode: 'relay', video: { ...job.video, bitrateKbps: job.bitrateKbps, keyframeIntervalSeconds: job.keyframeIntervalSeconds } });
			const [endpoint] = await broadcast.ingestRtp({ codec: 'VP8', payloadType, ssrc });
			sendTo = { host: endpoint!.ip, rtpPort: endpoint!.port, rtcpPort: endpoint!.rtcpPort };
			ready = () => broadcast.live && (broadcast.reencoder('video')?.stats.framesEncoded ?? 0) > 0;
			addConsumer = async () => {
				await broadcast.addPlainViewer({ remote: { ip: '127.0.0.1', port: sink.port }, enableSrtp: true, kinds: ['video'] });
			};
		} else {
			const mediasoup = await import('mediasoup');
			const { plainReceiverCapabilities } = await import('../codecs.js');
			const worker = await mediasoup.createWorker({ logLevel: 'warn' });
			cleanups.unshift(() => worker.close());
			workerPid = worker.pid;
			const router = await worker.createRouter({ mediaCodecs: [{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }] });
			const ingest = await router.createPlainTransport({ listenIp: '127.0.0.1', comedia: true, rtcpMux: false });
			const producer = await ingest.produce({
				kind: 'video',
				rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType, clockRate: 90000, rtcpFeedback: [{ type: 'nack', parameter: 'pli' }] }], encodings: [{ ssrc }] },
			});
			sendTo = { host: '127.0.0.1', rtpPort: ingest.tuple.localPort, rtcpPort: ingest.rtcpTuple!.localPort };
			let packets = 0;
			ready = () => {
				void producer.getStats().then((stats) => (packets = stats[0]?.packetCount ?? 0));
				return packets > 0;
			};
			addConsumer = async () => {
				const transport = await router.createPlainTransport({ listenIp: '127.0.0.1', rtcpMux: true, comedia: false, enableSrtp: true });
				await transport.connect({
					ip: '127.0.0.1',
					port: sink.port,
					srtpParameters: { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: randomBytes(30).toString('base64') },
				});
				// What the relay's plain viewers accept: no RTX, no transport-cc (so no probation packets), PLI/FIR only.
				await transport.consume({ producerId: producer.id, rtpCapabilities: plainReceiverCapabilities(router.rtpCapabilities) });
			};
		}
		pin(workerPid, job.cores.worker);
		const source = new FfmpegProcess({
			binary: resolveFfmpeg().path,
			args: testSourceArgs({ video, videoTarget: { ...sendTo, ssrc, payloadType } }),
			logger,
		});
		await source.start();
		cleanups.unshift(() => source.close());
		const deadline = performance.now() + 30_000;
		while (!ready()) {
			if (performance.now() > deadline) throw new Error('the source never reached the worker (30 s)');
			await sleep(100);
		}

		let consumers = 0;
		while (consumers < job.maxConsumers) {
			for (let i = 0; i < job.step; i++) await addConsumer();
			consumers += job.step;
			// New consumers wait for a keyframe: measure from the next one on.
			await sleep(job.keyframeIntervalSeconds * 1000 + 500);
			await sink.reset();
			const cpu = new CpuMeter();
			cpu.start([workerPid]);
			const started = performance.now();
			await sleep(job.stepSeconds * 1000);
			const streams = await sink.report();
			const seconds = (performance.now() - started) / 1000;
			const received = streams.reduce((sum, s) => sum + s.packets, 0);
			const lost = streams.reduce((sum, s) => sum + s.lost, 0);
			const bytes = streams.reduce((sum, s) => sum + s.bytes, 0);
			const step: IsolatedStep = {
				consumers,
				lossPercent: received + lost ? (lost / (received + lost)) * 100 : 0,
				workerCpuPercent: cpu.read() * 100,
				packetsPerSecond: streams.length ? received / streams.length / seconds : 0,
				kbps: streams.length ? (bytes * 8) / streams.length / seconds / 1000 : 0,
			};
			steps.push(step);
			if (step.lossPercent > job.lossThreshold) {
				limitedBy = 'loss';
				break;
			}
			if (step.workerCpuPercent > job.cpuThreshold) {
				limitedBy = 'cpu';
				break;
			}
		}
	} catch (error) {
		limitedBy = 'error';
		return summarise(job, steps, limitedBy, (error as Error).message);
	} finally {
		for (const cleanup of cleanups) await Promise.resolve(cleanup()).catch(() => undefined);
	}
	return summarise(job, steps, limitedBy);
}

function summarise(job: RampJob, steps: IsolatedStep[], limitedBy: IsolatedRamp['limitedBy'], error?: string): IsolatedRamp {
	const ok = steps.filter((s) => s.lossPercent <= job.lossThreshold && s.workerCpuPercent <= job.cpuThreshold);
	const last = ok.at(-1);
	return {
		build: job.build.name,
		source: job.source,
		bitrateKbps: job.bitrateKbps,
		steps,
		consumersAtSaturation: last?.consumers ?? 0,
		limitedBy,
		packetsPerSecondAtSaturation: last ? last.consumers * last.packetsPerSecond : 0,
		...(error ? { error } : {}),
	};
}

/** The side-by-side table: one row per bitrate and source, one column group per build. */
export function isolatedSaturationMarkdown(report: IsolatedSaturationReport): string {
	const { options } = report;
	const builds = options.builds.map((b) => b.name);
	const find = (bitrate: number, source: RampSource, build: string) =>
		report.ramps.find((r) => r.bitrateKbps === bitrate && r.source === source && r.build === build);
	const lines = [
		`Isolated saturation: worker pinned to CPU ${options.cores.worker}, everything else to CPU ${options.cores.rest}; ramp of ${options.step} SRTP consumers per step, ${options.stepSeconds} s each, until loss > ${options.lossThreshold} % or worker CPU > ${options.cpuThreshold} %. ${report.machine.cpus} × ${report.machine.model}, Node ${report.machine.node}, ${report.date}.`,
		'',
		`| bitrate | source | ${builds.map((b) => `${b}: consumers (limit) | ${b}: worker CPU % | ${b}: pps per consumer | ${b}: pps total`).join(' | ')} |`,
		`|---|---|${builds.map(() => '---:|---:|---:|---:').join('|')}|`,
	];
	for (const bitrate of options.bitratesKbps) {
		for (const source of options.sources) {
			const cells = builds.map((build) => {
				const ramp = find(bitrate, source, build);
				if (!ramp) return '– | – | – | –';
				const at = ramp.steps.find((s) => s.consumers === ramp.consumersAtSaturation);
				return `${ramp.consumersAtSaturation} (${ramp.limitedBy}${ramp.error ? `: ${ramp.error}` : ''}) | ${(at?.workerCpuPercent ?? 0).toFixed(0)} | ${(at?.packetsPerSecond ?? 0).toFixed(0)} | ${ramp.packetsPerSecondAtSaturation.toFixed(0)}`;
			});
			lines.push(`| ${bitrate} kbit/s | ${source} | ${cells.join(' | ')} |`);
		}
	}
	const ratios: string[] = [];
	for (const bitrate of options.bitratesKbps) {
		const ossl = find(bitrate, 'relay', 'openssl');
		const nss = find(bitrate, 'relay', 'nss');
		if (ossl && nss && nss.consumersAtSaturation) ratios.push(`${bitrate} kbit/s: OpenSSL / NSS (relay) ${(ossl.consumersAtSaturation / nss.consumersAtSaturation).toFixed(2)}×`);
		for (const build of builds) {
			const relay = find(bitrate, 'relay', build);
			const raw = find(bitrate, 'raw', build);
			if (relay && raw && raw.consumersAtSaturation) {
				ratios.push(`${bitrate} kbit/s, ${build}: relay overhead against raw ${(((raw.consumersAtSaturation - relay.consumersAtSaturation) / raw.consumersAtSaturation) * 100).toFixed(1)} % of capacity`);
			}
		}
	}
	if (ratios.length) lines.push('', ...ratios.map((r) => `- ${r}`));
	return lines.join('\n');
}

async function main(argv: string[]): Promise<void> {
	if (argv.includes('--ramp-child')) {
		const [message] = (await once(process, 'message')) as [{ type: string; job: RampJob }];
		const ramp = await rampInChild(message.job);
		process.send!({ type: 'ramp', ramp }, () => process.exit(0));
		return;
	}
	const smoke = argv.includes('--smoke');
	const outIndex = argv.indexOf('--out');
	const out = outIndex >= 0 ? argv[outIndex + 1] : undefined;
	const options = defaultIsolatedSaturationOptions(smoke);
	const report = await runIsolatedSaturation(options, (label) => process.stderr.write(`isolated saturation: ${label}\n`));
	const markdown = isolatedSaturationMarkdown(report);
	process.stdout.write(`${markdown}\n`);
	if (out) {
		mkdirSync(out, { recursive: true });
		writeFileSync(join(out, 'isolated-saturation.json'), `${JSON.stringify(report, null, 2)}\n`);
		writeFileSync(join(out, 'isolated-saturation.md'), `${markdown}\n`);
	}
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
	main(process.argv.slice(2)).catch((error: unknown) => {
		process.stderr.write(`isolated saturation: ${(error as Error).stack ?? String(error)}\n`);
		process.exit(1);
	});
}
