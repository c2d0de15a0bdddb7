import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { mediaChildren, sleep } from './helpers/fixture.js';

const CLI = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const children: ChildProcess[] = [];

function run(args: string[], env: Record<string, string> = {}): ChildProcess {
	const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
	children.push(child);
	return child;
}

async function finish(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
	let stdout = '';
	let stderr = '';
	child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
	child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
	const [code] = (await once(child, 'exit')) as [number | null];
	return { code, stdout, stderr };
}

async function waitForOutput(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
	let text = '';
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${stream} within ${timeoutMs} ms: ${text}`)), timeoutMs);
		child[stream]!.on('data', (d: Buffer) => {
			text += d.toString();
			const match = pattern.exec(text);
			if (match) {
				clearTimeout(timer);
				resolve(match);
			}
		});
	});
}

/** Processes (the CLI and whatever it started: mediasoup workers, FFmpeg) that inherited this marker in their environment. */
function processesMarked(marker: string): number[] {
	const found: number[] = [];
	for (const entry of readdirSync('/proc')) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(marker)) found.push(Number(entry));
		} catch {
			/* gone, or not ours */
		}
	}
	return found;
}

afterEach(async () => {
	for (const child of children.splice(0)) {
		if (child.exitCode === null && child.signalCode === null) {
			child.kill('SIGKILL');
			await once(child, 'exit');
		}
	}
});

describe('CLI', () => {
	it('--help on every command, exit 0', async () => {
		for (const args of [['--help'], ['serve', '--help'], ['attach', '--help'], ['status', '--help']]) {
			const { code, stdout } = await finish(run(args));
			expect(code).toBe(0);
			expect(stdout).toMatch(/Usage: broadcast-relay/);
		}
	});

	it('usage and configuration errors: one line, exit 2', async () => {
		const badFlag = await finish(run(['serve', '--port', 'abc']));
		expect(badFlag.code).toBe(2);
		expect(badFlag.stderr).toMatch(/not an integer/);
		const badConfig = await finish(run(['serve', '--print-config'], { BROADCAST_RELAY_PORT: '99999' }));
		expect(badConfig.code).toBe(2);
		expect(badConfig.stderr.trim().split('\n')).toHaveLength(1);
		expect(badConfig.stderr).toMatch(/port: /);
	});

	describe('configuration and environment errors: one line that says what to do, exit 2, nothing left running', () => {
		async function refused(args: string[], env: Record<string, string> = {}): Promise<string> {
			const marker = `BR_TEST_MARK_${randomBytes(6).toString('hex')}`;
			const { code, stderr } = await finish(run(args, { ...env, [marker]: '1' }));
			expect({ code, lines: stderr.trim().split('\n').length }, stderr).toEqual({ code: 2, lines: 1 });
			expect(stderr).not.toMatch(/^\s+at /m); // no stack trace
			await sleep(300);
			expect(processesMarked(marker)).toEqual([]);
			return stderr;
		}

		it('a misspelled key in the config file is an error, not an open service', async () => {
			const dir = mkdtempSync(join(tmpdir(), 'relay-config-'));
			try {
				writeFileSync(join(dir, 'top.json'), JSON.stringify({ ingestToken: ['ingest-token-1'] }));
				expect(await refused(['serve', '--config', join(dir, 'top.json'), '--print-config'])).toMatch(/ingestToken/);
				writeFileSync(join(dir, 'nested.json'), JSON.stringify({ relay: { listenIP: '127.0.0.1', broadcastDefaults: { video: { bitrate: 900 } } } }));
				const nested = await refused(['serve', '--config', join(dir, 'nested.json')]);
				expect(nested).toMatch(/listenIP/);
				expect(nested).toMatch(/bitrate/);
				writeFileSync(join(dir, 'list.json'), '["not", "an", "object"]');
				expect(await refused(['serve', '--config', join(dir, 'list.json')])).toMatch(/one JSON object/);
			} finally {
				rmSync(dir, { recursive: true, force: true });
			}
		});

		it('token variables that are set but hold no token are errors', async () => {
			expect(await refused(['serve', '--print-config'], { BROADCAST_RELAY_INGEST_TOKENS: ' , ' })).toMatch(/BROADCAST_RELAY_INGEST_TOKENS has an empty entry/);
			expect(await refused(['serve'], { BROADCAST_RELAY_ADMIN_TOKENS: '' })).toMatch(/BROADCAST_RELAY_ADMIN_TOKENS/);
			expect(await refused(['serve'], { BROADCAST_RELAY_INGEST_TOKENS: 'ingest-token-1,' })).toMatch(/empty entry/);
		});

		it('addresses are checked at start: a bad listen or announced IP', async () => {
			expect(await refused(['serve', '--demo', '--port', '0'], { BROADCAST_RELAY_LISTEN_IP: '999.1.1.1' })).toMatch(/relay\.listenIp: must be an IPv4 or IPv6 address/);
			expect(await refused(['serve', '--announced-ip', 'example.com', '--print-config'])).toMatch(/relay\.announcedIp/);
			expect(await refused(['serve', '--print-config'], { BROADCAST_RELAY_LISTEN_IP: '0.0.0.0' })).toMatch(/relay\.announcedIp: listening on every interface needs announcedIp/);
		});

		it('a wrong --ffmpeg', async () => {
			expect(await refused(['serve', '--port', '0', '--workers', '1', '--ffmpeg', '/nonexistent/ffmpeg'])).toMatch(/\/nonexistent\/ffmpeg/);
		});

		it('a port in use, after the workers started: they are stopped again', async () => {
			const blocker = createServer();
			await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
			const { port } = blocker.address() as { port: number };
			try {
				expect(await refused(['serve', '--port', String(port), '--workers', '2', '--demo'])).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}: the port is in use; pick another`));
			} finally {
				blocker.close();
			}
		});

		it('an HTTP host that does not resolve', async () => {
			expect(await refused(['serve', '--port', '0', '--workers', '1', '--host', 'no-such-host.invalid'])).toMatch(/"no-such-host\.invalid" does not resolve/);
		});
	});

	it('--print-config merges file, environment and flags, later winning', async () => {
		const dir = mkdtempSync(join(tmpdir(), 'relay-config-'));
		const file = join(dir, 'config.json');
		writeFileSync(file, JSON.stringify({ port: 7000, host: '127.0.0.2', demo: 'from-file', relay: { consumersPerRouter: 250 } }));
		const { code, stdout } = await finish(
			run(['serve', '--config', file, '--print-config', '--workers', '3', '--admin-token', 'admin-token-1'], { BROADCAST_RELAY_PORT: '9123' }),
		);
		rmSync(dir, { recursive: true, force: true });
		expect(code).toBe(0);
		const config = JSON.parse(stdout);
		expect(config.host).toBe('127.0.0.2');
		expect(config.demo).toBe('from-file');
		expect(config.relay.consumersPerRouter).toBe(250);
		expect(config.port).toBe(9123);
		expect(config.relay.workers).toBe(3);
		expect(config.adminTokens).toEqual(['admin-token-1']);
		expect(config.relay.consumersPerWorker).toBe(500);
	});

	it('a --relay that is not an http(s) URL: one line, exit 2', async () => {
		for (const relay of ['notaurl', 'ftp://127.0.0.1:8080']) {
			const { code, stderr } = await finish(run(['status', '--relay', relay]));
			expect(code).toBe(2);
			expect(stderr.trim().split('\n')).toHaveLength(1);
			expect(stderr).toMatch(/is not (a URL|http\(s\)); give its base URL, e\.g\. http:\/\/127\.0\.0\.1:8080/);
		}
	});

	it('attach --sdp with a file that is not there: one line, exit 2', async () => {
		const { code, stderr } = await finish(run(['attach', '--broadcast', 'x', '--relay', 'http://127.0.0.1:9', '--sdp', '/nonexistent/stream.sdp']));
		expect(code).toBe(2);
		expect(stderr.trim().split('\n')).toHaveLength(1);
		expect(stderr).toMatch(/cannot read --sdp \/nonexistent\/stream\.sdp: ENOENT/);
	});

	it('status against nothing: exit 3 with what to do', async () => {
		const { code, stderr } = await finish(run(['status', '--relay', 'http://127.0.0.1:9']));
		expect(code).toBe(3);
		expect(stderr).toMatch(/cannot reach the relay .* is "broadcast-relay serve" running\?/);
	});

	it('serve, status, attach --test-source, then SIGTERM: exit 0 and no FFmpeg left', { timeout: 90_000 }, async () => {
		const serve = run(['serve', '--port', '0', '--workers', '2', '--admin-token', 'admin-token-1', '--log-level', 'warn']);
		const [, url] = await waitForOutput(serve, 'stderr', /dashboard:\s+(http:\/\/\S+)\//);
		const relayUrl = url!;

		expect((await finish(run(['status', '--relay', relayUrl]))).code).toBe(4);

		const attach = run(['attach', '--relay', relayUrl, '--token', 'admin-token-1', '--broadcast', 'cam', '--test-source', '--follow']);
		await waitForOutput(attach, 'stdout', /send video RTP to 127\.0\.0\.1:\d+/);
		const [line] = await waitForOutput(attach, 'stdout', /cam \[relay, live\] .*re-encoder up [1-9]\d* fps/, 30_000);
		expect(line).toMatch(/keyframe requests/);
		const status = await finish(run(['status', '--relay', relayUrl, '--token', 'admin-token-1']));
		expect(status.code).toBe(0);
		expect(status.stdout).toMatch(/cam \[relay, live\]/);
		expect(status.stdout).toMatch(/#1 pid \d+ alive/);
		attach.kill('SIGINT');
		expect((await finish(attach)).code).toBe(0);

		const started = Date.now();
		serve.kill('SIGTERM');
		const [code] = (await once(serve, 'exit')) as [number];
		expect(code).toBe(0);
		expect(Date.now() - started).toBeLessThan(10_000);
		await sleep(200);
		expect(mediaChildren()).toEqual([]);
	});
});
