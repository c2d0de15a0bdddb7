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

/** Measures the CPU share (1 = one core) of a set of processes between start() and stop(). */
export class CpuMeter {
	#pids: number[] = [];
	#cpu = 0;
	#at = 0;

	start(pids: number[]): void {
		this.#pids = pids;
		this.#cpu = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
		this.#at = performance.now();
	}

	/** Cores used on average since start(). */
	read(): number {
		const seconds = (performance.now() - this.#at) / 1000;
		const cpu = this.#pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - this.#cpu;
		return seconds > 0 ? cpu / seconds : 0;
	}
}
