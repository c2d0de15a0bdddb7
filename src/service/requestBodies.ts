import { isIP } from 'node:net';
import { z } from 'zod';
import { InvalidOptionError } from '../errors.js';
import { formatIssues } from '../options.js';

/** Parses a JSON request body; a bad one is an InvalidOptionError (400) naming each bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
	const result = schema.safeParse(body);
	if (!result.success) throw new InvalidOptionError(`${what}: ${formatIssues(result.error, 'body')}`);
	return result.data;
}

export const ipAddress = z.string().refine((value) => isIP(value) !== 0, 'must be an IPv4 or IPv6 address');

/** Pipe ingest (a node's or an app's PipeTransport): where it listens... */
export const pipeOpenBody = z.strictObject({ ip: ipAddress, port: z.number().int().min(1).max(65535) });
/** ...and what it produces into the broadcast. mediasoup validates the rest (and throws TypeError, answered 400). */
export const pipeProduceBody = z.strictObject({
	kind: z.enum(['audio', 'video']),
	rtpParameters: z.looseObject({ codecs: z.array(z.looseObject({})).min(1), encodings: z.array(z.looseObject({})).min(1) }),
	paused: z.boolean().optional(),
});
