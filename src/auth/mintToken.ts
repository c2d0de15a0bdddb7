import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { InvalidOptionError } from '../errors.js';
import { PERMISSIONS_CLAIM, readPermissions, type Permission } from './permissions.js';

export interface MintTokenOptions {
	/** HS256 shared secret, the same the relay verifies with (at least 32 characters). */
	secret: string;
	/** What the token grants. At least one. */
	permissions: Permission[];
	/** Lifetime, seconds. */
	ttlSeconds: number;
	/** `aud` claim; must match the relay's tokens.audience. */
	audience: string;
	/** `iss` claim, when the relay requires one. */
	issuer?: string;
	/** `sub` claim: who the token is for (shows in the relay's logs). */
	subject?: string;
	/** Clock, for tests. Default Date.now(). */
	now?: number;
}

/** Signs an HS256 token granting `permissions` for `ttlSeconds` (what `broadcast-relay token` prints). */
export async function mintToken(options: MintTokenOptions): Promise<string> {
	const { secret, permissions, ttlSeconds, audience, issuer, subject, now = Date.now() } = options;
	if (secret.length < 32) throw new InvalidOptionError('the token secret must be at least 32 characters (HS256 wants 256 bits); generate one with: openssl rand -base64 32');
	if (permissions.length === 0) throw new InvalidOptionError('a token must grant something: give --publish <broadcast>, --play <broadcast> or --admin');
	const checked = readPermissions({ [PERMISSIONS_CLAIM]: permissions });
	if ('error' in checked) throw new InvalidOptionError(checked.error);
	if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new InvalidOptionError('the token lifetime must be a whole number of seconds, at least 1');
	const issuedAt = Math.floor(now / 1000);
	const jwt = new SignJWT({ [PERMISSIONS_CLAIM]: checked.permissions })
		.setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
		.setIssuedAt(issuedAt)
		.setExpirationTime(issuedAt + ttlSeconds)
		.setAudience(audience)
		.setJti(randomBytes(9).toString('base64url'));
	if (issuer) jwt.setIssuer(issuer);
	if (subject) jwt.setSubject(subject);
	return jwt.sign(new TextEncoder().encode(secret));
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "90s", "30m", "2h", "7d" or plain seconds, as seconds; undefined when it is none of these. */
export function parseDuration(text: string): number | undefined {
	const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
	if (!match) return undefined;
	const seconds = Number(match[1]) * UNITS[match[2] || 's']!;
	return seconds > 0 ? seconds : undefined;
}
