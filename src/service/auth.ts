import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AccessPolicy, RouteNeed } from '../auth/AccessPolicy.js';
import { ForbiddenError, UnauthorizedError } from '../errors.js';
import { sendError } from './httpErrors.js';

/** A quoted-string for WWW-Authenticate parameters (RFC 9110 §5.6.4). */
function quoted(value: string): string {
	return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The bearer-token check for a route: static tokens of its role or a signed
 * token (JWT) that grants `need`. Answers 401 (no token, or an invalid one:
 * bad signature, expired, unsigned) or 403 (a valid token that does not grant
 * this) with WWW-Authenticate (RFC 6750 §3) and a message that says what to
 * do, and resolves false; resolves true when the request may proceed.
 */
export async function authorizeRequest(request: FastifyRequest, reply: FastifyReply, access: AccessPolicy, need: RouteNeed, realm: string): Promise<boolean> {
	if (access.isOpen(need)) return true;
	const header = request.headers.authorization;
	const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
	try {
		if (header !== undefined && !match) throw new UnauthorizedError('send the token as Authorization: Bearer <token>');
		await access.check(match?.[1], need);
		return true;
	} catch (error) {
		if (!(error instanceof UnauthorizedError || error instanceof ForbiddenError)) {
			void sendError(reply, error, access.retryAfterSeconds);
			return false;
		}
		const forbidden = error instanceof ForbiddenError;
		const code = forbidden ? 'insufficient_scope' : match ? 'invalid_token' : undefined;
		const challenge = [`Bearer realm=${quoted(realm)}`, ...(code ? [`error=${quoted(code)}`] : []), `error_description=${quoted(error.message)}`].join(', ');
		request.log.info({ realm, status: forbidden ? 403 : 401, reason: error.message }, 'request refused');
		void reply
			.code(forbidden ? 403 : 401)
			.header('www-authenticate', challenge)
			.type('text/plain; charset=utf-8')
			.send(error.message);
		return false;
	}
}
