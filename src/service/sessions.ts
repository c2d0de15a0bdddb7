import { randomBytes } from 'node:crypto';

export type SessionKind = 'whip' | 'whep' | 'pipe';

export interface Session {
	readonly id: string;
	readonly kind: SessionKind;
	readonly broadcastId: string;
	readonly etag: string;
	/** Ends what the session holds (publication, viewer, pipe). Idempotent. */
	close(): void;
	/** Extra state some session kinds keep (the pipe ingest). */
	data?: unknown;
}

/**
 * The HTTP sessions (WHIP publications, WHEP viewers, pipe ingests) by their
 * unguessable ids: 128 random bits, so a session URL is its own capability.
 */
export class SessionRegistry {
	readonly #sessions = new Map<string, Session>();
	readonly #opened: Record<SessionKind, number> = { whip: 0, whep: 0, pipe: 0 };

	create(kind: SessionKind, broadcastId: string, close: () => void, data?: unknown): Session {
		const id = randomBytes(16).toString('base64url');
		const session: Session = { id, kind, broadcastId, etag: `"${randomBytes(8).toString('hex')}"`, close, data };
		this.#sessions.set(id, session);
		this.#opened[kind]++;
		return session;
	}

	get(kind: SessionKind, broadcastId: string, id: string): Session | undefined {
		const session = this.#sessions.get(id);
		return session && session.kind === kind && session.broadcastId === broadcastId ? session : undefined;
	}

	/** Forgets a session (when what it held ended by itself). */
	forget(id: string): void {
		this.#sessions.delete(id);
	}

	/** Ends and forgets a session. */
	end(id: string): boolean {
		const session = this.#sessions.get(id);
		if (!session) return false;
		this.#sessions.delete(id);
		session.close();
		return true;
	}

	count(kind?: SessionKind): number {
		return kind ? [...this.#sessions.values()].filter((s) => s.kind === kind).length : this.#sessions.size;
	}

	/** Sessions of `kind` opened since start (a running total). */
	opened(kind: SessionKind): number {
		return this.#opened[kind];
	}

	endAll(): void {
		for (const id of [...this.#sessions.keys()]) this.end(id);
	}
}
