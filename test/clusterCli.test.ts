import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { CLI, freePort } from './helpers/cluster.js';

async function serve(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
	const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--port', '0', '--workers', '1', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
	let stderr = '';
	child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
	const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
	const [code] = (await once(child, 'exit')) as [number | null];
	clearTimeout(timer);
	return { code, stderr };
}

describe('cluster mode: configuration errors at start', () => {
	it('a Redis that does not answer: exit 2 with a line that says what to do', { timeout: 30_000 }, async () => {
		const port = await freePort();
		const { code, stderr } = await serve(['--cluster', `redis://127.0.0.1:${port}`, '--node-id', 'n1', '--public-url', 'http://127.0.0.1:1']);
		expect(code).toBe(2);
		expect(stderr).toMatch(new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port}.*start Redis, or fix --cluster`));
	});

	it('incomplete or bad cluster options, from flags or environment: exit 2 naming each', { timeout: 30_000 }, async () => {
		const noUrl = await serve(['--cluster', 'redis://127.0.0.1:6379']);
		expect(noUrl.code).toBe(2);
		expect(noUrl.stderr).toMatch(/cluster\.publicUrl/);
		const bad = await serve([], { BROADCAST_RELAY_CLUSTER: 'http://redis:6379', BROADCAST_RELAY_PUBLIC_URL: 'ftp://x', BROADCAST_RELAY_NODE_ID: 'bad id' });
		expect(bad.code).toBe(2);
		expect(bad.stderr).toMatch(/cluster\.redisUrl: redisUrl must start with redis:\/\//);
		expect(bad.stderr).toMatch(/cluster\.publicUrl/);
		expect(bad.stderr).toMatch(/cluster\.nodeId/);
	});
});
