import { timingSafeEqual } from 'node:crypto';
import { InvalidOptionError, UnauthorizedError } from '../errors.js';
import type { AccessNeed } from './permissions.js';
import { TokenVerifier, type SignedTokenOptions, type VerifiedToken } from './TokenVerifier.js';

/** What needs a token, and which tokens are accepted. Built once from the service config. */
export interface AccessPolicyOptions {
	/** Static bearer tokens for publishing (WHIP, ingest API, RTMP/SRT stream keys). */
	ingestTokens: readonly string[];
	/** Static bearer tokens for the admin API (and /metrics). */
	adminTokens: readonly string[];
	/** Static bearer tokens for /metrics only. */
	metricsTokens: readonly string[];
	/** "public": anyone may play (WHEP); "token": a signed token with play permission for the broadcast is needed. */
	playback: 'public' | 'token';
	signedTokens: SignedTokenOptions;
	/** Retry-After, seconds, when tokens cannot be checked now (the JWKS URL does not answer). */
	retryAfterSeconds: number;
}

/** A need as the routes state it: the actions of signed tokens, plus `metrics` (admin tokens, or the metrics-only ones). */
export type RouteNeed = AccessNeed | { action: 'metrics' };

function same(a: string, b: string): boolean {
	const x = Buffer.from(a);
	const y = Buffer.from(b);
	return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Who may do what: static bearer tokens per role and signed tokens (JWT) with
 * per-broadcast permissions. A route is open only when nothing is configured
 * that could grant it (no static token for its role and no signed tokens);
 * playback is open unless `playback` is "token".
 */
export class AccessPolicy {
	readonly #options: AccessPolicyOptions;
	readonly #verifier?: TokenVerifier;

	private constructor(options: AccessPolicyOptions, verifier: TokenVerifier | undefined) {
		this.#options = options;
		this.#verifier = verifier;
	}

	/** Reads a JWKS file when one is configured (InvalidOptionError when it cannot). */
	static async create(options: AccessPolicyOptions): Promise<AccessPolicy> {
		const verifier = await TokenVerifier.create(options.signedTokens);
		if (options.playback === 'token' && !verifier) {
			throw new InvalidOptionError('playback "token" needs signed tokens: set tokens.secret, tokens.jwksUrl or tokens.jwksFile');
		}
		return new AccessPolicy(options, verifier);
	}

	/** Retry-After, seconds, for a 503 when tokens cannot be checked now. */
	get retryAfterSeconds(): number {
		return this.#options.retryAfterSeconds;
	}

	/** The signed-token verifier, when signed tokens are configured. */
	get verifier(): TokenVerifier | undefined {
		return this.#verifier;
	}

	#staticTokens(need: RouteNeed): readonly string[] {
		const { ingestTokens, adminTokens, metricsTokens } = this.#options;
		switch (need.action) {
			case 'publish':
				return ingestTokens;
			case 'admin':
				return adminTokens;
			case 'metrics':
				return [...metricsTokens, ...adminTokens];
			case 'play':
				return [];
		}
	}

	/** True when the route takes no token at all. */
	isOpen(need: RouteNeed): boolean {
		if (need.action === 'play') return this.#options.playback === 'public';
		return this.#staticTokens(need).length === 0 && !this.#verifier;
	}

	/**
	 * Resolves when `token` (the bearer token, undefined when none was sent)
	 * grants `need`, with the signed token's claims when it was one. Throws
	 * UnauthorizedError (401) or ForbiddenError (403) with a message for the client.
	 */
	async check(token: string | undefined, need: RouteNeed): Promise<VerifiedToken | undefined> {
		if (this.isOpen(need)) return undefined;
		if (token === undefined || token === '') throw new UnauthorizedError('this route needs Authorization: Bearer <token>');
		if (this.#staticTokens(need).some((t) => same(t, token))) return undefined;
		if (!this.#verifier) throw new UnauthorizedError('the bearer token is not valid for this route');
		// /metrics is an admin right for signed tokens.
		return this.#verifier.verify(token, need.action === 'metrics' ? { action: 'admin' } : need);
	}

	/**
	 * The RTMP/SRT stream-key check: a static ingest token, or a signed token
	 * with publish permission for `broadcastId`. Throws UnauthorizedError or
	 * ForbiddenError (say why in the log line, then refuse the connection).
	 */
	authorizeStreamKey(key: string | undefined, broadcastId: string): Promise<VerifiedToken | undefined> {
		return this.check(key, { action: 'publish', broadcastId });
	}
}
