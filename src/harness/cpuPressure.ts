import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Pins every thread of a running process to `cpus` (taskset's list syntax, e.g. "0" or "0-2");
 * threads it starts later inherit it. Returns false when the process is gone or taskset failed.
 */
export function pinProcess(pid: number, cpus: string): boolean {
	const result = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
	return result.status === 0;
}

/** The cores a process may run on (its affinity, from /proc), in taskset's list syntax, e.g. "0-1" or "0,2-3". */
export function affinityOf(pid: number): string {
	const match = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
	if (!match) throw new Error(`no Cpus_allowed_list in /proc/${pid}/status`);
	return match[1]!;
}

/** The cores in a taskset list ("0-1,4" → [0, 1, 4]). */
export function parseCoreList(list: string): number[] {
	return list.split(',').flatMap((part) => {
		const [from, to = from] = part.split('-').map(Number);
		return Array.from({ length: to! - from! + 1 }, (_, i) => from! + i);
	});
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
