import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

function same(a: string, b: string): boolean {
	const x = Buffer.from(a);
	const y = Buffer.from(b);
	return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * RFC 6750 bearer-token check. With no tokens configured the route is open.
 * Returns false (and answers 401 with WWW-Authenticate) when the request may not proceed.
 */
export function authorize(request: FastifyRequest, reply: FastifyReply, tokens: readonly string[], realm: string): boolean {
	if (tokens.length === 0) return true;
	const header = request.headers.authorization ?? '';
	const match = /^Bearer\s+(\S+)$/i.exec(header);
	if (match && tokens.some((t) => same(t, match[1]!))) return true;
	const error = match ? 'error="invalid_token", ' : '';
	void reply
		.code(401)
		.header('www-authenticate', `Bearer realm="${realm}", ${error}error_description="send Authorization: Bearer <token>"`)
		.type('text/plain; charset=utf-8')
		.send(match ? 'the bearer token is not valid for this route' : 'this route needs Authorization: Bearer <token>');
	return false;
}
