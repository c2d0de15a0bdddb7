import { readFile } from 'node:fs/promises';

/** /proc/net/udp writes an IPv4 address as one little-endian 32-bit word in hex. */
function procAddress(hex: string): string {
	return (hex.match(/../g) ?? []).map((b) => Number.parseInt(b, 16)).reverse().join('.');
}

/** Local address:port of every IPv4 UDP socket on this host, from /proc/net/udp (Linux). Undefined where that file does not exist. */
async function boundUdpSockets(): Promise<Array<{ address: string; port: number }> | undefined> {
	try {
		const table = await readFile('/proc/net/udp', 'utf8');
		const sockets: Array<{ address: string; port: number }> = [];
		for (const line of table.split('\n').slice(1)) {
			const [hexAddress, hexPort] = line.trim().split(/\s+/)[1]?.split(':') ?? [];
			if (hexAddress && hexPort) sockets.push({ address: procAddress(hexAddress), port: Number.parseInt(hexPort, 16) });
		}
		return sockets;
	} catch {
		return undefined;
	}
}

/**
 * Resolves true once some process has bound UDP `port` (on `address`, or on the
 * wildcard address, when given), false after `timeoutMs` or on abort. Used to
 * know when FFmpeg listens for RTP. It reads the kernel's socket table rather
 * than test-binding the port, because a test bind could race with FFmpeg's own
 * bind and make it fail. Give the address: the mediasoup transport that feeds
 * FFmpeg binds the same port number on another loopback address (see
 * PortPool.acquireFeed), and would otherwise count as FFmpeg.
 */
export async function waitForUdpBind(port: number, timeoutMs: number, signal?: AbortSignal, address?: string): Promise<boolean> {
	const deadline = Date.now() + timeoutMs;
	while (Date.now() < deadline && !signal?.aborted) {
		const sockets = await boundUdpSockets();
		if (!sockets) {
			// No socket table to read: give FFmpeg a moment, as a fixed guess.
			await new Promise((resolve) => setTimeout(resolve, 500));
			return true;
		}
		if (sockets.some((s) => s.port === port && (address === undefined || s.address === address || s.address === '0.0.0.0'))) return true;
		await new Promise((resolve) => setTimeout(resolve, 25));
	}
	return false;
}
