/**
 * The RTMP handshake, server side (C0 C1 → S0 S1 S2, then C2). Clients that send
 * a version of zero in C1 get the plain handshake (S2 echoes C1); clients that
 * sign C1 (Flash Player 9 style: librtmp in OBS, FFmpeg) get S1 signed with the
 * server key and S2 keyed on their digest, which some of them check. The
 * algorithm is the one every RTMP server implements (nginx-rtmp, node-media-server).
 */
import { createHmac, randomBytes } from 'node:crypto';

export const HANDSHAKE_SIZE = 1536;
const DIGEST_SIZE = 32;

const CRUD = Buffer.from('f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae', 'hex');
const SERVER_KEY = Buffer.from('Genuine Adobe Flash Media Server 001', 'latin1');
const SERVER_KEY_FULL = Buffer.concat([SERVER_KEY, CRUD]);
const CLIENT_KEY = Buffer.from('Genuine Adobe Flash Player 001', 'latin1');

function hmac(data: Buffer, key: Buffer): Buffer {
	return createHmac('sha256', key).update(data).digest();
}

/** Where the digest sits: scheme 0 counts from bytes 8..11, scheme 1 from bytes 772..775. */
function digestOffset(sig: Buffer, scheme: 0 | 1): number {
	const base = scheme === 0 ? 8 : 772;
	const sum = sig[base]! + sig[base + 1]! + sig[base + 2]! + sig[base + 3]!;
	return (sum % 728) + (scheme === 0 ? 12 : 776);
}

function withoutDigest(sig: Buffer, offset: number): Buffer {
	return Buffer.concat([sig.subarray(0, offset), sig.subarray(offset + DIGEST_SIZE)]);
}

/** The scheme of a signed C1, or undefined for the plain handshake. */
function clientScheme(c1: Buffer): 0 | 1 | undefined {
	for (const scheme of [1, 0] as const) {
		const offset = digestOffset(c1, scheme);
		if (hmac(withoutDigest(c1, offset), CLIENT_KEY).equals(c1.subarray(offset, offset + DIGEST_SIZE))) return scheme;
	}
	return undefined;
}

/** S0 S1 S2 in answer to C1. */
export function serverHandshake(c1: Buffer): Buffer {
	const s0 = Buffer.from([3]);
	const scheme = clientScheme(c1);
	if (scheme === undefined) {
		// Plain: S1 with time and zero version, S2 echoing C1.
		const s1 = Buffer.concat([Buffer.alloc(8), randomBytes(HANDSHAKE_SIZE - 8)]);
		return Buffer.concat([s0, s1, c1]);
	}
	const s1 = Buffer.concat([Buffer.from([0, 0, 0, 0, 1, 2, 3, 4]), randomBytes(HANDSHAKE_SIZE - 8)]);
	const s1Offset = digestOffset(s1, scheme);
	hmac(withoutDigest(s1, s1Offset), SERVER_KEY).copy(s1, s1Offset);
	const clientDigestAt = digestOffset(c1, scheme);
	const key = hmac(c1.subarray(clientDigestAt, clientDigestAt + DIGEST_SIZE), SERVER_KEY_FULL);
	const random = randomBytes(HANDSHAKE_SIZE - DIGEST_SIZE);
	const s2 = Buffer.concat([random, hmac(random, key)]);
	return Buffer.concat([s0, s1, s2]);
}
