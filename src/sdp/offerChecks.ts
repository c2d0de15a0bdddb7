/**
 * Checks of the values in a client's SDP offer, applied before any of them
 * reaches sdp-transform's helpers or mediasoup. sdp-transform parses leniently
 * (a field may come back as a number, a string, undefined or '' depending on the
 * text), and mediasoup throws plain errors on what it cannot take (an empty or
 * repeated MID, a repeated SSRC, header extension id 0, an unknown fingerprint
 * algorithm), which would surface as 500s. Here each is an InvalidSdpError (400)
 * that names the line to fix.
 */
import { InvalidSdpError } from '../errors.js';

/** RFC 5888 token characters; 16 bytes so the MID fits mediasoup's and WebRTC's one-byte header extension. */
const MID = /^[A-Za-z0-9!#$%&'*+.^_`{|}~-]{1,16}$/;
/** RFC 8851 rid-id. */
const RID = /^[A-Za-z0-9_-]{1,16}$/;
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`{|}~/-]{1,64}$/;
const CODEC_NAME = /^[A-Za-z0-9_.+-]{1,32}$/;
const FMTP_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
/** ICE ufrag/pwd: RFC 8839 allows letters, digits, "+" and "/"; any visible ASCII is taken, as the relay (ICE-lite) does not use them. */
const ICE_CHARS = /^[\x21-\x7e]{1,256}$/;
const MAX_FMTP_PARAMETERS = 32;
const MAX_FMTP_VALUE = 256;

/** Fingerprint algorithms mediasoup takes, with their digest length in bytes. */
export const FINGERPRINT_ALGORITHMS = { 'sha-1': 20, 'sha-224': 28, 'sha-256': 32, 'sha-384': 48, 'sha-512': 64 } as const;
export type FingerprintAlgorithm = keyof typeof FINGERPRINT_ALGORITHMS;

/** An integer in [min, max] as sdp-transform gives it (number or digit string), or undefined. */
export function integerIn(value: unknown, min: number, max: number): number | undefined {
	const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
	if (!/^\d{1,10}$/.test(text)) return undefined;
	const number = Number(text);
	return number >= min && number <= max ? number : undefined;
}

/** A field sdp-transform may give as a number (numeric text) or a string, as the text it was. */
export function text(value: unknown): string | undefined {
	if (typeof value === 'string') return value;
	if (typeof value === 'number' && Number.isFinite(value)) return String(value);
	return undefined;
}

export function checkMid(value: unknown, where: string): string {
	const mid = text(value);
	if (mid === undefined || !MID.test(mid)) {
		throw new InvalidSdpError(`${where}: a=mid:${mid ?? ''} is not a valid MID; use 1-16 letters, digits or "-_.", unique per m= section`);
	}
	return mid;
}

export function checkRid(value: unknown, where: string): string {
	const rid = text(value);
	if (rid === undefined || !RID.test(rid)) throw new InvalidSdpError(`${where}: a=rid:${rid ?? ''} is not a valid RID; use 1-16 letters, digits, "-" or "_"`);
	return rid;
}

export function isToken(value: unknown): value is string {
	return typeof value === 'string' && TOKEN.test(value);
}

export function checkCodecName(value: unknown, where: string): string {
	const name = text(value);
	if (name === undefined || !CODEC_NAME.test(name)) throw new InvalidSdpError(`${where}: codec name "${name ?? ''}" is not valid`);
	return name;
}

export function checkIceCredential(value: unknown, what: 'ice-ufrag' | 'ice-pwd'): string | undefined {
	if (value === undefined) return undefined;
	const credential = text(value);
	if (credential === undefined || !ICE_CHARS.test(credential)) throw new InvalidSdpError(`a=${what} is not valid; use 4-256 letters, digits, "+" and "/"`);
	return credential;
}

/**
 * Parses an a=fmtp parameter list ("minptime=10;useinbandfec=1") the way
 * sdp-transform's parseParams does (integers become numbers), without its
 * assumptions: the config may be a number, empty or garbage (parseParams throws
 * TypeError on a number). Entries that are not `name=value` or `name` with a
 * token name are left out (RED's "111/111" among them: it is no parameter), so
 * what reaches mediasoup is always names to strings or numbers. profile-level-id
 * and other ids stay strings even when all digits.
 */
export function parseFmtp(config: unknown): Record<string, string | number> {
	const parameters: Record<string, string | number> = {};
	const entries = (text(config) ?? '').split(';').map((e) => e.trim()).filter((e) => e.length > 0);
	for (const entry of entries.slice(0, MAX_FMTP_PARAMETERS)) {
		const eq = entry.indexOf('=');
		const key = (eq < 0 ? entry : entry.slice(0, eq)).trim();
		const value = eq < 0 ? '' : entry.slice(eq + 1).trim();
		if (!FMTP_KEY.test(key) || value.length > MAX_FMTP_VALUE || key === '__proto__') continue;
		const numeric = /^\d{1,15}$/.test(value) && !/(^|-)id$/i.test(key);
		parameters[key] = numeric ? Number(value) : value;
	}
	return parameters;
}

/** An a=fingerprint line as mediasoup's remote DTLS fingerprint: a known algorithm and a hash of its length. */
export function checkFingerprint(fingerprint: { type?: unknown; hash?: unknown } | undefined): { algorithm: FingerprintAlgorithm; value: string } {
	if (!fingerprint) throw new InvalidSdpError('SDP offer has no a=fingerprint; WebRTC needs DTLS');
	const algorithm = (text(fingerprint.type) ?? '').toLowerCase();
	if (!Object.hasOwn(FINGERPRINT_ALGORITHMS, algorithm)) {
		throw new InvalidSdpError(`a=fingerprint uses "${algorithm.slice(0, 20)}"; use one of ${Object.keys(FINGERPRINT_ALGORITHMS).join(', ')}`);
	}
	const bytes = FINGERPRINT_ALGORITHMS[algorithm as FingerprintAlgorithm];
	const value = text(fingerprint.hash) ?? '';
	if (!new RegExp(`^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){${bytes - 1}}$`).test(value)) {
		throw new InvalidSdpError(`a=fingerprint:${algorithm} must be ${bytes} hexadecimal bytes separated by ":"`);
	}
	return { algorithm: algorithm as FingerprintAlgorithm, value: value.toUpperCase() };
}
