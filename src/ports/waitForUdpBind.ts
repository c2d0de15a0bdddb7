import { readFile } from 'node:fs/promises';

/** Ports bound for UDP on this host, from /proc/net/udp (Linux). Undefined where that file does not exist. */
async function boundUdpPorts(): Promise<Set<number> | undefined> {
	try {
		const table = await readFile('/proc/net/udp', 'utf8');
		const ports = new Set<number>();
		for (const line of table.split('\n').slice(1)) {
			const local = line.trim().split(/\s+/)[1];
			const hexPort = local?.split(':')[1];
			if (hexPort) ports.add(Number.parseInt(hexPort, 16));
		}
		return ports;
	} catch {
		return undefined;
	}
}

/**
 * Resolves true once some process has bound UDP `port`, false after `timeoutMs`
 * or on abort. Used to know when FFmpeg listens for RTP. It reads the kernel's
 * socket table rather than test-binding the port, because a test bind could
 * race with FFmpeg's own bind and make it fail.
 */
export async function waitForUdpBind(port: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
	const deadline = Date.now() + timeoutMs;
	while (Date.now() < deadline && !signal?.aborted) {
		const bound = await boundUdpPorts();
		if (!bound) {
			// No socket table to read: give FFmpeg a moment, as a fixed guess.
			await new Promise((resolve) => setTimeout(resolve, 500));
			return true;
		}
		if (bound.has(port)) return true;
		await new Promise((resolve) => setTimeout(resolve, 25));
	}
	return false;
}
