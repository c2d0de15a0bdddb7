import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ForbiddenError, InvalidOptionError, RelayError, UnauthorizedError } from '../errors.js';
import { grants, readPermissions, type AccessNeed, type Permission } from './permissions.js';

/** Signed-token settings, as resolved by the service config (see README, Signed tokens). */
export interface SignedTokenOptions {
	/** HS256/384/512 shared secret. */
	secret?: string;
	/** JWKS (public keys) fetched from this URL and cached. */
	jwksUrl?: string;
	/** JWKS read from this file once, at start. */
	jwksFile?: string;
	/** Required `aud` claim. */
	audience: string;
	/** Required `iss` claim, when set. */
	issuer?: string;
	/** Leeway for exp/nbf against clock skew, seconds. */
	clockToleranceSeconds: number;
}

/** A token that checked out: who it is for and what it grants. */
export interface VerifiedToken {
	subject?: string;
	expiresAt: Date;
	permissions: Permission[];
}

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
/** JWKS keys are public keys: an HMAC algorithm there would let a public key be used as a shared secret. */
const PUBLIC_KEY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** Three base64url segments; the third is empty for an unsigned (alg "none") token, which is refused with its own message. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function looksLikeJwt(token: string): boolean {
	return JWT_SHAPE.test(token);
}

/**
 * Checks signed tokens (JWT): signature (HS* secret or a JWKS), expiry, audience
 * and issuer, then the `broadcast_relay` permissions against what a request
 * needs. The one place tokens are checked, for HTTP routes and for RTMP/SRT
 * stream keys alike.
 */
export class TokenVerifier {
	readonly #key: Uint8Array | JWTVerifyGetKey;
	readonly #algorithms: string[];
	readonly #options: SignedTokenOptions;
	/** Where keys come from, for messages. */
	readonly #keySource: string;

	private constructor(options: SignedTokenOptions, key: Uint8Array | JWTVerifyGetKey, algorithms: string[], keySource: string) {
		this.#options = options;
		this.#key = key;
		this.#algorithms = algorithms;
		this.#keySource = keySource;
	}

	/** A verifier for the configured key source, or undefined when signed tokens are not configured. A JWKS file that cannot be read or parsed throws InvalidOptionError. */
	static async create(options: SignedTokenOptions): Promise<TokenVerifier | undefined> {
		if (options.secret) return new TokenVerifier(options, new TextEncoder().encode(options.secret), HMAC_ALGORITHMS, 'the configured secret');
		if (options.jwksUrl) {
			// jose caches the set, refetches on an unknown kid (at most every 30 s) and times out after 5 s.
			return new TokenVerifier(options, createRemoteJWKSet(new URL(options.jwksUrl)), PUBLIC_KEY_ALGORITHMS, `the JWKS at ${options.jwksUrl}`);
		}
		if (options.jwksFile) {
			let text: string;
			try {
				text = await readFile(options.jwksFile, 'utf8');
			} catch (error) {
				throw new InvalidOptionError(`cannot read the JWKS file ${options.jwksFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; give a JSON file of the form {"keys": [...]}`);
			}
			let jwks: unknown;
			try {
				jwks = JSON.parse(text);
			} catch (error) {
				throw new InvalidOptionError(`the JWKS file ${options.jwksFile} is not valid JSON: ${(error as Error).message}`);
			}
			let keySet: JWTVerifyGetKey;
			try {
				keySet = createLocalJWKSet(jwks as never);
			} catch (error) {
				throw new InvalidOptionError(`the JWKS file ${options.jwksFile} is not a JSON Web Key Set ({"keys": [...]}): ${(error as Error).message}`);
			}
			return new TokenVerifier(options, keySet, PUBLIC_KEY_ALGORITHMS, `the JWKS file ${options.jwksFile}`);
		}
		return undefined;
	}

	/**
	 * Resolves with the token's claims when it is valid and grants `need`.
	 * Throws UnauthorizedError (401: not a token, unsigned, bad signature,
	 * expired, wrong audience/issuer) or ForbiddenError (403: a valid token
	 * that does not grant this action on this broadcast), each with a message
	 * that says what to do; RelayError ERR_AUTH_UNAVAILABLE (503) when the JWKS
	 * URL cannot be reached.
	 */
	async verify(token: string, need: AccessNeed): Promise<VerifiedToken> {
		const verified = await this.#check(token);
		const result = grants(verified.permissions, need);
		if (!result.granted) throw new ForbiddenError(result.reason);
		return verified;
	}

	async #check(token: string): Promise<VerifiedToken> {
		if (!looksLikeJwt(token)) throw new UnauthorizedError('the token is neither a configured bearer token nor a signed token (JWT)');
		let alg: string | undefined;
		try {
			alg = decodeProtectedHeader(token).alg;
		} catch {
			throw new UnauthorizedError('the token is not a well-formed JWT (its header does not decode)');
		}
		if (!alg || alg.toLowerCase() === 'none') {
			throw new UnauthorizedError('unsigned tokens (alg "none") are never accepted; mint a signed one (broadcast-relay token)');
		}
		if (!this.#algorithms.includes(alg)) {
			throw new UnauthorizedError(`tokens signed with alg "${alg}" are not accepted here; sign with ${this.#algorithms.join(', ')} (keys from ${this.#keySource})`);
		}
		let payload: JWTPayload;
		try {
			({ payload } = await jwtVerify(token, this.#key as never, {
				algorithms: this.#algorithms,
				audience: this.#options.audience,
				...(this.#options.issuer ? { issuer: this.#options.issuer } : {}),
				requiredClaims: ['exp'],
				clockTolerance: this.#options.clockToleranceSeconds,
			}));
		} catch (error) {
			throw this.#explain(error);
		}
		const read = readPermissions(payload);
		if ('error' in read) throw new UnauthorizedError(`the token's permissions are malformed: ${read.error}`);
		return { subject: payload.sub, expiresAt: new Date(payload.exp! * 1000), permissions: read.permissions };
	}

	/** jose's errors as messages for the client (and the operator reading the log). */
	#explain(error: unknown): RelayError {
		if (error instanceof errors.JWTExpired) {
			const exp = typeof error.payload.exp === 'number' ? ` at ${new Date(error.payload.exp * 1000).toISOString()}` : '';
			return new UnauthorizedError(`the token expired${exp}; mint a new one`);
		}
		if (error instanceof errors.JWTClaimValidationFailed) {
			const { claim, reason } = error;
			if (reason === 'missing') {
				return new UnauthorizedError(
					claim === 'exp'
						? 'the token has no "exp" claim; tokens must expire (mint one with --ttl)'
						: `the token has no "${claim}" claim; it must carry ${claim === 'aud' ? `"aud": "${this.#options.audience}"` : `"iss": "${this.#options.issuer}"`}`,
				);
			}
			if (claim === 'aud') return new UnauthorizedError(`the token is for another audience; its "aud" must be "${this.#options.audience}"`);
			if (claim === 'iss') return new UnauthorizedError(`the token comes from another issuer; its "iss" must be "${this.#options.issuer}"`);
			if (claim === 'nbf') return new UnauthorizedError('the token is not valid yet ("nbf" is in the future); check the clocks');
			return new UnauthorizedError(`the token's "${claim}" claim is not valid (${reason})`);
		}
		if (error instanceof errors.JWSSignatureVerificationFailed) {
			return new UnauthorizedError(`the token's signature does not verify with ${this.#keySource}; was it signed with another key?`);
		}
		if (error instanceof errors.JWKSNoMatchingKey) {
			return new UnauthorizedError(`no key in ${this.#keySource} matches the token's "kid"/"alg"; sign with one of its keys`);
		}
		if (error instanceof errors.JOSEAlgNotAllowed) {
			return new UnauthorizedError(`the token's algorithm is not accepted here; sign with ${this.#algorithms.join(', ')}`);
		}
		if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || (error instanceof TypeError && this.#options.jwksUrl)) {
			return new RelayError('ERR_AUTH_UNAVAILABLE', `cannot check the token now: ${this.#keySource} is unreachable or invalid; try again later`, { cause: error });
		}
		if (error instanceof errors.JOSEError) return new UnauthorizedError(`the token is not a valid JWT: ${error.message}`);
		return new RelayError('ERR_AUTH_UNAVAILABLE', 'cannot check the token now; try again later', { cause: error });
	}
}
