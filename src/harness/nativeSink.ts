import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The load-test sink in C: one UDP socket read with recvmmsg, 64 datagrams per
 * system call, counting packets, bytes and sequence-number gaps per SSRC (SRTP
 * leaves the RTP header in the clear). The Node sink costs a JS callback per
 * datagram and, at ~70,000 packets/s, ran out of its core before the worker
 * under test did (issue 13's relay rows).
 *
 * Protocol: prints "ready <port>" once bound; reads commands on stdin, one per
 * line: "report" prints one line of JSON ({"streams":[...]}), "reset" clears and
 * prints "reset". Exits at end of stdin.
 */
const SOURCE = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BATCH 64
#define SLOTS 65536

struct stream { uint32_t ssrc; int used; uint64_t packets, bytes, cycles; uint16_t base, max; double first_at; };
static struct stream streams[SLOTS];

static double now_ms(void) { struct timeval tv; gettimeofday(&tv, NULL); return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0; }

static struct stream *find(uint32_t ssrc) {
	uint32_t i = (ssrc * 2654435761u) & (SLOTS - 1);
	for (int n = 0; n < SLOTS; n++, i = (i + 1) & (SLOTS - 1)) {
		if (!streams[i].used) { streams[i].used = 1; streams[i].ssrc = ssrc; return &streams[i]; }
		if (streams[i].ssrc == ssrc) return &streams[i];
	}
	return NULL;
}

static void count(const unsigned char *p, size_t len) {
	if (len < 12 || (p[0] >> 6) != 2) return;
	int pt = p[1] & 0x7f;
	if (pt >= 72 && pt <= 79) return; /* RTCP on a muxed port */
	uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
	uint32_t ssrc = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11];
	struct stream *s = find(ssrc);
	if (!s) return;
	if (s->packets == 0) { s->base = seq; s->max = seq; s->first_at = now_ms(); }
	s->packets++; s->bytes += len;
	uint16_t delta = (uint16_t)(seq - s->max);
	if (delta > 0 && delta < 32768) { if (seq < s->max) s->cycles += 65536; s->max = seq; }
}

static void report(void) {
	printf("{\"streams\":[");
	int first = 1;
	for (int i = 0; i < SLOTS; i++) {
		struct stream *s = &streams[i];
		if (!s->used || s->packets == 0) continue;
		int64_t expected = (int64_t)s->cycles + s->max - s->base + 1;
		int64_t lost = expected - (int64_t)s->packets;
		printf("%s{\"ssrc\":%u,\"packets\":%llu,\"bytes\":%llu,\"lost\":%lld,\"firstAt\":%.0f}", first ? "" : ",", s->ssrc,
			(unsigned long long)s->packets, (unsigned long long)s->bytes, (long long)(lost > 0 ? lost : 0), s->first_at);
		first = 0;
	}
	printf("]}\n");
	fflush(stdout);
}

int main(void) {
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int size = 16 * 1024 * 1024;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("bind"); return 1; }
	socklen_t alen = sizeof addr;
	getsockname(fd, (struct sockaddr *)&addr, &alen);
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	static unsigned char bufs[BATCH][2048];
	struct mmsghdr msgs[BATCH];
	struct iovec iovs[BATCH];
	char line[64];
	size_t used = 0;
	struct pollfd fds[2] = { { .fd = fd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
	for (;;) {
		if (poll(fds, 2, -1) < 0) continue;
		if (fds[0].revents & POLLIN) {
			for (;;) {
				for (int i = 0; i < BATCH; i++) {
					iovs[i].iov_base = bufs[i]; iovs[i].iov_len = sizeof bufs[i];
					memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
					msgs[i].msg_hdr.msg_iov = &iovs[i]; msgs[i].msg_hdr.msg_iovlen = 1;
				}
				int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
				if (n <= 0) break;
				for (int i = 0; i < n; i++) count(bufs[i], msgs[i].msg_len);
				if (n < BATCH) break;
			}
		}
		if (fds[1].revents & (POLLIN | POLLHUP)) {
			ssize_t r = read(0, line + used, sizeof line - 1 - used);
			if (r <= 0) return 0;
			used += (size_t)r;
			line[used] = 0;
			char *nl;
			while ((nl = strchr(line, '\n'))) {
				*nl = 0;
				if (strcmp(line, "report") == 0) report();
				else if (strcmp(line, "reset") == 0) { memset(streams, 0, sizeof streams); printf("reset\n"); fflush(stdout); }
				size_t rest = used - (size_t)(nl + 1 - line);
				memmove(line, nl + 1, rest);
				used = rest;
				line[used] = 0;
			}
			if (used >= sizeof line - 1) used = 0;
		}
	}
}
`;

let built: string | null | undefined;

/**
 * Path of the compiled sink, built with the system C compiler on first use
 * (cached by a hash of its source under the temp directory); undefined where
 * there is no compiler (the Node sink is used then).
 */
export function nativeSinkBinary(): string | undefined {
	if (built !== undefined) return built ?? undefined;
	if (process.platform !== 'linux') return (built = null) ?? undefined;
	const hash = createHash('sha256').update(SOURCE).digest('hex').slice(0, 12);
	const dir = join(tmpdir(), 'broadcast-relay-sink');
	const binary = join(dir, `rtp-sink-${hash}`);
	if (existsSync(binary)) return (built = binary);
	try {
		mkdirSync(dir, { recursive: true });
		const source = join(dir, `rtp-sink-${hash}-${process.pid}.c`);
		writeFileSync(source, SOURCE);
		const partial = `${binary}.${process.pid}`;
		execFileSync('cc', ['-O2', '-o', partial, source], { stdio: 'ignore' });
		renameSync(partial, binary);
		return (built = binary);
	} catch {
		built = null;
		return undefined;
	}
}
