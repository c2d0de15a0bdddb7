import type { FastifyReply } from 'fastify';
import { RelayError } from '../errors.js';

const STATUS: Record<string, number> = {
	ERR_INVALID_SDP: 400,
	ERR_INVALID_RTP_PARAMETERS: 400,
	ERR_INVALID_OPTION: 400,
	ERR_UNSUPPORTED_CODEC: 422,
	ERR_UNAUTHORIZED: 401,
	ERR_FORBIDDEN: 403,
	ERR_CONFLICT: 409,
	ERR_PRODUCER_CLOSED: 409,
	ERR_NOT_FOUND: 404,
	ERR_CAPACITY_EXCEEDED: 503,
	ERR_PORT_RANGE_EXHAUSTED: 503,
	ERR_CLOSED: 503,
	ERR_AUTH_UNAVAILABLE: 503,
	ERR_FFMPEG_NOT_FOUND: 500,
};

/** HTTP status for a relay error code; anything unknown is a 500. */
export function statusOf(error: unknown): number {
	return error instanceof RelayError ? (STATUS[error.code] ?? 500) : 500;
}

/**
 * What the client is told: a relay error's own message (written for it), and
 * for anything else (a bug) only that it failed and where to look, so that no
 * internals (paths, mediasoup method names) reach the client.
 */
function publicMessage(reply: FastifyReply, error: unknown): string {
	if (error instanceof RelayError) return error.message;
	return `internal error (request ${reply.request.id}); the relay's log has the details`;
}

/** Answers a failed request: status from the error, its message as plain text, Retry-After when capacity ran out. */
export function sendError(reply: FastifyReply, error: unknown, retryAfterSeconds: number): FastifyReply {
	const status = statusOf(error);
	if (status === 503) reply.header('retry-after', String(retryAfterSeconds));
	const message = publicMessage(reply, error);
	if (status >= 500) reply.log.error({ err: error }, 'request failed');
	else reply.log.info({ code: (error as RelayError).code, message }, 'request refused');
	return reply.code(status).type('text/plain; charset=utf-8').send(message);
}

export function sendJsonError(reply: FastifyReply, error: unknown, retryAfterSeconds: number): FastifyReply {
	const status = statusOf(error);
	if (status === 503) reply.header('retry-after', String(retryAfterSeconds));
	if (status >= 500) reply.log.error({ err: error }, 'request failed');
	return reply.code(status).send({ error: error instanceof RelayError ? error.code : 'ERR_INTERNAL', message: publicMessage(reply, error) });
}
