import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Installs the package the way a user (and the Dockerfile) does: `npm pack`
 * (which builds), then `npm install --omit=dev <tarball>` into an empty
 * project, so only `dependencies` are there. The mediasoup worker already
 * built in this clone is reused: MEDIASOUP_WORKER_BIN during the install
 * makes mediasoup's postinstall skip its download or build, and the binary is
 * then copied to where mediasoup looks for it, as the Dockerfile does with the
 * worker it builds. Keep these steps and the Dockerfile's in step.
 */

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKER_BIN = join(ROOT, 'node_modules/mediasoup/worker/out/Release/mediasoup-worker');
const { MEDIASOUP_WORKER_BIN: _unset, ...inherited } = process.env;
/** At run time the installed package finds its worker where mediasoup looks by default, as in the image. */
const env = { ...inherited, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

let dir: string;
let app: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
	dir = mkdtempSync(join(tmpdir(), 'relay-packed-'));
	app = join(dir, 'app');
	mkdirSync(app);
	await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, env, maxBuffer: 16 << 20 });
	const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
	if (!tarball) throw new Error(`npm pack wrote no tarball into ${dir}`);
	writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'relay-user', private: true, type: 'module' }));
	// --prefer-offline: the clone's own install filled npm's cache, the registry is asked only for what is missing.
	await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-package-lock', '--loglevel=error', join(dir, tarball)], {
		cwd: app,
		env: { ...env, MEDIASOUP_WORKER_BIN: WORKER_BIN },
		maxBuffer: 16 << 20,
	});
	const release = join(app, 'node_modules/mediasoup/worker/out/Release');
	mkdirSync(release, { recursive: true });
	copyFileSync(WORKER_BIN, join(release, 'mediasoup-worker'));
}, 240_000);

afterAll(async () => {
	for (const child of children) {
		if (child.exitCode === null && child.signalCode === null) {
			child.kill('SIGKILL');
			await once(child, 'exit');
		}
	}
	if (dir) rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[]): ChildProcess {
	const child = spawn(join(app, 'node_modules/.bin/broadcast-relay'), args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
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

describe('the packed package, installed without dev dependencies', () => {
	it('has no dev-only package in its tree', () => {
		for (const dev of ['vitest', 'tsx', 'typescript', 'playwright-core']) expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
		// werift is not ours to install: node-av lists werift 0.23 as an optional dependency of its own (for
		// its WebRTC helpers), and npm, to keep our optional peer range (0.25.2) satisfied, puts 0.25.2 at the
		// top and node-av's 0.23 under node-av. So the harness finds the werift it was written for.
		const version = (path: string): string | undefined => (existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version : undefined);
		const topWerift = version(join(app, 'node_modules/werift/package.json'));
		if (topWerift !== undefined) expect(topWerift).toBe('0.25.2');
		expect(existsSync(join(app, 'node_modules/broadcast-relay/dist/cli/main.js'))).toBe(true);
	});

	it('broadcast-relay --help works', { timeout: 20_000 }, async () => {
		const { code, stdout, stderr } = await finish(cli(['--help']));
		expect(stderr).toBe('');
		expect(code).toBe(0);
		expect(stdout).toMatch(/Usage: broadcast-relay/);
	});

	it('the library imports at run time (its entry point pulls in nothing dev-only)', { timeout: 20_000 }, async () => {
		const script = "const m = await import('broadcast-relay'); console.log(typeof m.createRelay, typeof m.startService, typeof m.pipeToRelay);";
		const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env });
		expect(stdout.trim()).toBe('function function function');
	});

	it('bench runs where werift is installed (node-av brings it), and its CLI is there', { timeout: 20_000 }, async () => {
		const { code, stdout } = await finish(cli(['bench', '--help']));
		expect(code).toBe(0);
		expect(stdout).toMatch(/--engines/);
		const script = "const h = await import('broadcast-relay/harness'); console.log(typeof h.WeriftViewer);";
		const { stdout: loaded } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env });
		expect(loaded.trim()).toBe('function');
	});

	it('serve starts, answers /healthz, re-encodes its demo with the libav engine (no tsx, no dev dependency), and stops on SIGTERM', { timeout: 60_000 }, async () => {
		const serve = cli(['serve', '--port', '0', '--workers', '1', '--log-level', 'warn', '--demo']);
		let stderr = '';
		const url = await new Promise<string>((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`serve did not come up: ${stderr}`)), 45_000);
			serve.stderr!.on('data', (d: Buffer) => {
				stderr += d.toString();
				const match = /dashboard:\s+(http:\/\/\S+?)\/?\s/.exec(stderr);
				if (match) {
					clearTimeout(timer);
					resolve(match[1]!);
				}
			});
			serve.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
		});
		const health = await fetch(`${url}/healthz`);
		expect(health.status).toBe(200);
		expect(await health.json()).toEqual({ status: 'ok' });
		// The engine process runs the compiled dist/reencoder/libav/child.js with node-av from the install.
		await expect
			.poll(
				async () => {
					const demo = (await (await fetch(`${url}/api/broadcasts/demo`)).json()) as { reencoders?: { kind: string; engine: string; framesEncoded: number }[] };
					const video = demo.reencoders?.find((r) => r.kind === 'video');
					return video ? `${video.engine} ${video.framesEncoded > 0 ? 'encoding' : 'idle'}` : 'none';
				},
				{ timeout: 30_000, interval: 500 },
			)
			.toBe('libav encoding');
		serve.kill('SIGTERM');
		const [code] = (await once(serve, 'exit')) as [number];
		expect(code).toBe(0);
	});

	it("a TypeScript project compiles against the library's published types", { timeout: 120_000 }, async () => {
		// What a TypeScript user has anyway: @types/node (linked from this clone) and a compiler (this clone's).
		mkdirSync(join(app, 'node_modules/@types'), { recursive: true });
		symlinkSync(join(ROOT, 'node_modules/@types/node'), join(app, 'node_modules/@types/node'));
		writeFileSync(
			join(app, 'tsconfig.json'),
			JSON.stringify({
				compilerOptions: { target: 'ES2023', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
				files: ['use.ts'],
			}),
		);
		writeFileSync(
			join(app, 'use.ts'),
			[
				"import { createRelay, loadServiceConfig, startService, pipeToRelay, parseOffer, RelayError, type BroadcastStats, type RelayOptionsInput } from 'broadcast-relay';",
				'const options: RelayOptionsInput = { workers: 1 };',
				'export async function stats(): Promise<BroadcastStats[]> {',
				'  const relay = await createRelay(options);',
				"  const broadcast = await relay.createBroadcast({ id: 'x' });",
				'  const out = [await broadcast.getStats()];',
				'  await relay.close();',
				'  return out;',
				'}',
				'export const config = loadServiceConfig({});',
				'export const parts = [startService, pipeToRelay, parseOffer, RelayError];',
				'',
			].join('\n'),
		);
		const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
		const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, env }).catch((error: { stdout: string }) => error);
		expect('stdout' in result ? result.stdout : '').toBe('');
	});
});
