import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TURNSERVER = process.env.TURNSERVER_PATH ?? '/usr/bin/turnserver';

/** A free UDP port on loopback (bound and released; the caller binds it next). */
async function freeUdpPort(): Promise<number> {
	const socket = createSocket('udp4');
	await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
	const { port } = socket.address();
	await new Promise<void>((resolve) => socket.close(resolve));
	return port;
}

/** Sends STUN binding requests (RFC 5389) to 127.0.0.1:port every 100 ms; true at the first answer, false after timeoutMs. */
async function stunAnswers(port: number, timeoutMs: number): Promise<boolean> {
	const socket = createSocket('udp4');
	const request = Buffer.alloc(20);
	request.writeUInt16BE(0x0001, 0); // Binding request, no attributes
	request.writeUInt32BE(0x2112a442, 4); // magic cookie
	randomBytes(12).copy(request, 8);
	try {
		return await new Promise<boolean>((resolve) => {
			const deadline = setTimeout(() => resolve(false), timeoutMs);
			const timer = setInterval(() => socket.send(request, port, '127.0.0.1'), 100);
			socket.on('message', (message) => {
				if (message.readUInt16BE(0) === 0x0101) {
					clearTimeout(deadline);
					clearInterval(timer);
					resolve(true);
				}
			});
			socket.send(request, port, '127.0.0.1');
			deadline.unref();
			socket.once('close', () => clearInterval(timer));
		});
	} finally {
		socket.close();
	}
}

/**
 * Debian's coturn on loopback with the TURN REST scheme (use-auth-secret),
 * relaying from 127.0.0.1, started for one test and stopped by close(): no
 * config file (-n), its pid file and database in a temporary directory.
 */
export class Coturn {
	readonly port: number;
	readonly secret: string;
	readonly #child: ChildProcess;
	readonly #dir: string;
	#log = '';
	#exited: Promise<void>;

	private constructor(child: ChildProcess, port: number, secret: string, dir: string) {
		this.#child = child;
		this.port = port;
		this.secret = secret;
		this.#dir = dir;
		// A process that never started emits 'error' and no 'exit'.
		this.#exited = new Promise((resolve) => {
			child.once('exit', () => resolve());
			child.once('error', () => resolve());
		});
		child.stdout!.on('data', (d: Buffer) => (this.#log += d.toString()));
		child.stderr!.on('data', (d: Buffer) => (this.#log += d.toString()));
	}

	/** Everything coturn printed so far. */
	get log(): string {
		return this.#log;
	}

	/** `turn:` URL of the UDP listener. */
	get url(): string {
		return `turn:127.0.0.1:${this.port}?transport=udp`;
	}

	static async start(options: { secret: string; relayPorts: { min: number; max: number } }): Promise<Coturn> {
		if (!existsSync(TURNSERVER)) throw new Error(`${TURNSERVER} not found: install Debian's coturn (scripts/setup.sh does)`);
		const port = await freeUdpPort();
		const dir = mkdtempSync(join(tmpdir(), 'coturn-'));
		const child = spawn(
			TURNSERVER,
			[
				'-n',
				'--use-auth-secret',
				`--static-auth-secret=${options.secret}`,
				'--realm=broadcast-relay.test',
				'--listening-ip=127.0.0.1',
				`--listening-port=${port}`,
				'--relay-ip=127.0.0.1',
				`--min-port=${options.relayPorts.min}`,
				`--max-port=${options.relayPorts.max}`,
				'--no-cli',
				'--no-tls',
				'--no-dtls',
				'--allow-loopback-peers',
				'--fingerprint',
				'--log-file=stdout',
				`--pidfile=${join(dir, 'turnserver.pid')}`,
				`--userdb=${join(dir, 'turndb')}`,
			],
			{ stdio: ['ignore', 'pipe', 'pipe'] },
		);
		const turn = new Coturn(child, port, options.secret, dir);
		try {
			await Promise.race([
				stunAnswers(port, 5000).then((answered) => {
					if (!answered) throw new Error(`coturn did not answer a STUN binding request on 127.0.0.1:${port} within 5 s:\n${turn.log}`);
				}),
				new Promise<never>((_resolve, reject) => {
					child.once('error', (error) => reject(new Error(`coturn failed to start: ${error.message}`)));
					child.once('exit', (code) => reject(new Error(`coturn exited (code ${code}) before listening:\n${turn.log}`)));
				}),
			]);
		} catch (error) {
			await turn.close();
			throw error;
		}
		return turn;
	}

	/** SIGTERM, SIGKILL after 2 s, and the temporary directory removed. Idempotent. */
	async close(): Promise<void> {
		if (this.#child.exitCode === null && this.#child.signalCode === null) {
			this.#child.kill('SIGTERM');
			const timer = setTimeout(() => this.#child.kill('SIGKILL'), 2000);
			await this.#exited;
			clearTimeout(timer);
		}
		rmSync(this.#dir, { recursive: true, force: true });
	}
}
