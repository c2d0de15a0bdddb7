import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // Linux USER_HZ

/** CPU seconds (user + system) a process has used, from /proc; 0 where it cannot be read. */
export function cpuSeconds(pid: number): number {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
		const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
		return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
	} catch {
		return 0;
	}
}

/** Resident memory of a process, bytes; 0 where it cannot be read. */
export function rssBytes(pid: number): number {
	try {
		const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
		return match ? Number(match[1]) * 1024 : 0;
	} catch {
		return 0;
	}
}

/**
 * Measures the CPU share (1 = one core) of a changing set of processes
 * between start() and read(): a re-encoder's FFmpeg that is killed and
 * restarted, a mediasoup worker that dies and is replaced. The processes are
 * sampled (call sample() every so often; read() samples too): each counts
 * from its first sample, or from 0 when it appeared after start(), to its
 * last one, so a process that vanishes keeps what it had used and one that
 * appears counts in full. The CPU a process used between its last sample
 * and its death is not counted (at most one sampling interval).
 */
export class CpuMeter {
	#pids: () => number[] = () => [];
	readonly #from = new Map<number, number>();
	readonly #last = new Map<number, number>();
	#at = 0;
	#processes = 0;

	/** `pids`: the processes to meter, or a function giving the current ones (called at each sample). */
	start(pids: number[] | (() => number[])): void {
		this.#pids = typeof pids === 'function' ? pids : () => pids;
		this.#from.clear();
		this.#last.clear();
		for (const pid of this.#pids()) {
			const cpu = cpuSeconds(pid);
			this.#from.set(pid, cpu);
			this.#last.set(pid, cpu);
		}
		this.#at = performance.now();
	}

	/** Reads the current processes' CPU; new ones count from 0. */
	sample(): void {
		for (const pid of this.#pids()) {
			const cpu = cpuSeconds(pid);
			if (!this.#from.has(pid)) this.#from.set(pid, 0);
			// A process that has just exited reads 0: keep its last value.
			if (cpu > (this.#last.get(pid) ?? 0)) this.#last.set(pid, cpu);
		}
		this.#processes = this.#from.size;
	}

	/** Processes seen since start() (more than the current ones after a restart). */
	get processes(): number {
		return this.#processes;
	}

	/** Cores used on average since start(); never negative. */
	read(): number {
		this.sample();
		const seconds = (performance.now() - this.#at) / 1000;
		let cpu = 0;
		for (const [pid, from] of this.#from) cpu += Math.max(0, (this.#last.get(pid) ?? from) - from);
		return seconds > 0 ? cpu / seconds : 0;
	}
}
