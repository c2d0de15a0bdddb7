/**
 * Deterministic SDP mutations, the way a fuzzer (or a careless client) bends a
 * real offer: lines dropped, duplicated, swapped, cut short; tokens garbled,
 * dropped or repeated; whole m= sections repeated; mids renamed; plausible but
 * wrong lines inserted. Same seed, same offers.
 */

// The harness's seeded PRNG (mulberry32), so a failing offer can be made again from its index.
export { seededRandom } from '../../src/harness/LossyProxy.js';

const GARBAGE_TOKENS = [
	'', ' ', 'x', '0', '-1', '1.5', '1e400', 'NaN', 'Infinity', '4294967296', '18446744073709551616', '99999999999999999999',
	'undefined', 'null', 'true', '{}', '[]', ':', '=', ';', '/', '*', '%', '\t', 'é', '日本', '\u202e', '<script>', '../..',
	'a'.repeat(300), '96', '97', '111', '127', '128', '255', '256', '65536', 'sha-256', 'md5', 'AA:BB', 'video', 'audio',
	'application', 'recvonly', 'sendonly', 'sendrecv', 'inactive', 'rtx', 'red', 'VP8', 'H264', 'opus', 'VP8/90000',
	'opus/48000/2', 'apt=96', 'apt=', 'profile-level-id=zz', 'packetization-mode=1', 'urn:ietf:params:rtp-hdrext:sdes:mid',
];

const INTERESTING_LINES = [
	'a=mid:0', 'a=mid:1', 'a=mid:', 'a=mid:zz zz', 'a=mid:-', 'a=mid:0 0',
	'a=fmtp:96 111', 'a=fmtp:96', 'a=fmtp:', 'a=fmtp:96 =', 'a=fmtp:96 ;;;', 'a=fmtp:96 apt', 'a=fmtp:97 apt=abc', 'a=fmtp:97 apt=97',
	'a=fmtp:111 0', 'a=fmtp:102 profile-level-id=640c1f;packetization-mode=1',
	'a=rtpmap:96 VP8/abc', 'a=rtpmap:300 VP8/90000', 'a=rtpmap:96 VP8', 'a=rtpmap:96', 'a=rtpmap:96 opus/48000/x', 'a=rtpmap:-1 VP8/90000',
	'a=rtpmap:111 VP8/90000', 'a=rtpmap:96 rtx/90000',
	'a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid', 'a=extmap:99999 x', 'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
	'a=extmap:x y', 'a=extmap:15 urn:ietf:params:rtp-hdrext:toffset',
	'a=ssrc:abc cname:x', 'a=ssrc:4294967296 cname:x', 'a=ssrc:0 cname:', 'a=ssrc:1 msid:', 'a=ssrc-group:FID 1', 'a=ssrc-group:FID x y',
	'a=ssrc-group:FID 1 1', 'a=ssrc-group:SIM 1 2 3',
	'a=rid:h send', 'a=rid:h recv', 'a=rid: send', 'a=rid:h send pt=300', 'a=simulcast:send h;l', 'a=simulcast:send ~x',
	'a=setup:bogus', 'a=setup:active', 'a=setup:passive', 'a=setup:',
	'a=fingerprint:md5 00', 'a=fingerprint:sha-256 zz', 'a=fingerprint:sha-256', 'a=fingerprint:', 'a=fingerprint:sha-999 AA:BB',
	'm=video 9 UDP/TLS/RTP/SAVPF', 'm=video 9 UDP/TLS/RTP/SAVPF 96', 'm=audio 0 UDP/TLS/RTP/SAVPF 111', 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
	'm=video x y z', 'm=', 'm=text 9 RTP/AVP 0',
	'a=sendrecv', 'a=inactive', 'a=recvonly', 'a=sendonly',
	'a=rtcp-fb:* nack', 'a=rtcp-fb:96', 'a=rtcp-fb:x y z', 'a=rtcp-fb:96 goog-remb extra',
	'a=ice-ufrag:', 'a=ice-pwd:', 'a=ice-ufrag:a b', 'a=msid:', 'a=msid:- -', 'a=group:BUNDLE', 'a=group:BUNDLE 0 0 0',
	'c=IN IP4 300.1.1.1', 'c=IN IP6 ::1', 'c=', 'a=rtcp:x', 'a=candidate:garbage', 'a=extmap-allow-mixed', 'b=AS:-1', 'b=TIAS:x',
	'a=rtcp-mux', 'a=rtcp-rsize', 'a=end-of-candidates', 'x=garbage', 'a=', '=', 'a=max-message-size:x',
];

function pick<T>(random: () => number, items: readonly T[]): T {
	return items[Math.floor(random() * items.length)]!;
}

function tokens(line: string): string[] {
	// Split keeping separators, so a token can be replaced and the line put back together.
	return line.split(/([ :=;/,])/);
}

/** The index ranges [start, end) of each m= section. */
function sections(lines: readonly string[]): Array<[number, number]> {
	const starts = lines.map((l, i) => (l.startsWith('m=') ? i : -1)).filter((i) => i >= 0);
	return starts.map((start, k) => [start, starts[k + 1] ?? lines.length]);
}

type Mutation = (lines: string[], random: () => number) => string;

const MUTATIONS: Mutation[] = [
	function dropLine(lines, random) {
		const at = 1 + Math.floor(random() * (lines.length - 1));
		const [gone] = lines.splice(at, 1);
		return `drop "${gone}"`;
	},
	function duplicateLine(lines, random) {
		const at = Math.floor(random() * lines.length);
		const to = 1 + Math.floor(random() * lines.length);
		lines.splice(to, 0, lines[at]!);
		return `duplicate "${lines[at]}"`;
	},
	function swapLines(lines, random) {
		const a = Math.floor(random() * lines.length);
		const b = Math.floor(random() * lines.length);
		[lines[a], lines[b]] = [lines[b]!, lines[a]!];
		return `swap ${a} ${b}`;
	},
	function truncateLine(lines, random) {
		const at = Math.floor(random() * lines.length);
		lines[at] = lines[at]!.slice(0, Math.floor(random() * lines[at]!.length));
		return `truncate to "${lines[at]}"`;
	},
	function garbleToken(lines, random) {
		const at = Math.floor(random() * lines.length);
		const parts = tokens(lines[at]!);
		const which = Math.floor(random() * parts.length);
		parts[which] = pick(random, GARBAGE_TOKENS);
		lines[at] = parts.join('');
		return `garble "${lines[at]}"`;
	},
	function dropToken(lines, random) {
		const at = Math.floor(random() * lines.length);
		const parts = tokens(lines[at]!);
		parts.splice(Math.floor(random() * parts.length), 1);
		lines[at] = parts.join('');
		return `drop token: "${lines[at]}"`;
	},
	function duplicateToken(lines, random) {
		const at = Math.floor(random() * lines.length);
		const parts = tokens(lines[at]!);
		const which = Math.floor(random() * parts.length);
		parts.splice(which, 0, parts[which]!);
		lines[at] = parts.join('');
		return `duplicate token: "${lines[at]}"`;
	},
	function insertLine(lines, random) {
		const line = pick(random, INTERESTING_LINES);
		lines.splice(1 + Math.floor(random() * lines.length), 0, line);
		return `insert "${line}"`;
	},
	function garbleAttributeValue(lines, random) {
		const attributes = lines.map((l, i) => (/^a=[\w-]+:/.test(l) ? i : -1)).filter((i) => i >= 0);
		if (attributes.length === 0) return 'none';
		const at = pick(random, attributes);
		const name = lines[at]!.slice(0, lines[at]!.indexOf(':') + 1);
		lines[at] = name + pick(random, GARBAGE_TOKENS);
		return `garble value "${lines[at]}"`;
	},
	function duplicateSection(lines, random) {
		const all = sections(lines);
		if (all.length === 0) return 'none';
		const [start, end] = pick(random, all);
		lines.push(...lines.slice(start, end));
		return `duplicate section at ${start}`;
	},
	function renameMid(lines, random) {
		const mids = lines.map((l, i) => (l.startsWith('a=mid:') ? i : -1)).filter((i) => i >= 0);
		if (mids.length === 0) return 'none';
		const at = pick(random, mids);
		const other = lines[pick(random, mids)]!;
		lines[at] = random() < 0.5 ? other : `a=mid:${pick(random, GARBAGE_TOKENS)}`;
		return `mid "${lines[at]}"`;
	},
	function sharePayloadType(lines, random) {
		// A payload type of one section given to a codec of another (both stay listed on their m= lines).
		const all = sections(lines);
		if (all.length < 2) return 'none';
		const [fromStart, fromEnd] = pick(random, all);
		const [toStart, toEnd] = pick(random, all);
		const fromPt = lines.slice(fromStart, fromEnd).map((l) => /^a=rtpmap:(\d+) /.exec(l)?.[1]).filter(Boolean);
		const toLines = lines.slice(toStart, toEnd).map((l, i) => (/^a=rtpmap:\d+ /.test(l) ? toStart + i : -1)).filter((i) => i >= 0);
		if (fromPt.length === 0 || toLines.length === 0) return 'none';
		const pt = pick(random, fromPt)!;
		const at = toLines.length && random() < 0.5 ? toLines[0]! : pick(random, toLines);
		const old = /^a=rtpmap:(\d+) /.exec(lines[at]!)![1]!;
		lines[at] = lines[at]!.replace(`a=rtpmap:${old} `, `a=rtpmap:${pt} `);
		lines[toStart] = lines[toStart]!.replace(new RegExp(` ${old}(?= |$)`), ` ${pt}`);
		return `payload type ${old} -> ${pt}: "${lines[at]}"`;
	},
];

/** One mutated offer: 1-4 mutations of `offer`, drawn from `random`. */
export function mutateSdp(offer: string, random: () => number): { sdp: string; mutations: string[] } {
	const lines = offer.split(/\r?\n/).filter((l) => l.length > 0);
	const mutations: string[] = [];
	const count = 1 + Math.floor(random() * 4);
	for (let i = 0; i < count; i++) {
		const mutation = pick(random, MUTATIONS);
		mutations.push(`${mutation.name}: ${mutation(lines, random)}`.slice(0, 200));
	}
	return { sdp: `${lines.join('\r\n')}\r\n`, mutations };
}
