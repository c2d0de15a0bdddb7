import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * Pins every thread of a running process to `cpus` (taskset's list syntax, e.g. "0" or "0-2");
 * threads it starts later inherit it. Returns false when the process is gone or taskset failed.
 */
export function pinProcess(pid: number, cpus: string): boolean {
	const result = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
	return result.status === 0;
}

/** The list of every core, for taskset ("0-N"). */
export function allCores(): string {
	return `0-${availableParallelism() - 1}`;
}

/** Whether taskset can be run here (util-linux). */
export function hasTaskset(): boolean {
	return spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * A busy loop on one core for `seconds`: a child Node process spinning, pinned with taskset.
 * It ends by itself; kill it to end it early (the caller owns it).
 */
export function startBusyLoop(core: number, seconds: number): ChildProcess {
	const source = `const end = Date.now() + ${Math.round(seconds * 1000)}; while (Date.now() < end) {}`;
	return spawn('taskset', ['-c', String(core), process.execPath, '-e', source], { stdio: 'ignore' });
}
