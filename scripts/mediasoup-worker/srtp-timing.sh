#!/usr/bin/env bash
# Compares libsrtp2 on OpenSSL and on NSS (Debian's engine) with libsrtp's own timing
# test, `srtp_driver -t`, the same Debian source built both ways by build-libsrtp2.sh.
# Runs the two alternately ROUNDS times (default 3) so both see the same machine load,
# and prints a markdown table of the median throughput at 1024-byte messages, and the
# OpenSSL/NSS ratio. On a shared machine trust the ratios, not the absolute figures.
#
#   bash scripts/mediasoup-worker/srtp-timing.sh [rounds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

declare -A driver
for engine in openssl nss; do
  prefix=$(bash "$here/build-libsrtp2.sh" "$engine" 2>/dev/null | tail -n 1)
  driver[$engine]="$prefix/bin/srtp_driver"
done

for round in $(seq 1 "$rounds"); do
  for engine in openssl nss; do
    "${driver[$engine]}" -t >"$out/$engine-$round.txt" 2>&1
  done
done

# One line per policy section: "<cipher> + <auth>\t<Mbit/s at 1024 bytes>". The first
# section of each cipher/auth pair is kept (GCM appears twice, with two tag lengths).
extract() {
  tr -d '\r' <"$1" | awk -F'\t+' '
    /^# rtp cipher:/ { sub(/^# rtp cipher: +/, ""); sub(/ using [A-Za-z]+$/, ""); cipher = $0 }
    /^# rtp auth:/ { sub(/^# rtp auth: +/, ""); auth = $0 }
    /^1024\t/ { name = cipher " + " auth; if (!(name in seen)) { seen[name] = 1; print name "\t" $2 } }
  '
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "srtp_driver -t, libsrtp2 $(cat "$(dirname "${driver[openssl]}")/../VERSION"), 1024-byte messages, median of $rounds alternating rounds, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| policy (cipher + auth) | NSS (Mbit/s) | OpenSSL (Mbit/s) | OpenSSL / NSS |"
echo "|---|---:|---:|---:|"
extract "$out/openssl-1.txt" | cut -f1 | while IFS= read -r policy; do
  [ "$policy" = "null cipher + null authentication function" ] && continue
  nss=$(for f in "$out"/nss-*.txt; do extract "$f"; done | awk -F'\t' -v p="$policy" '$1 == p { print $2 }' | median)
  ossl=$(for f in "$out"/openssl-*.txt; do extract "$f"; done | awk -F'\t' -v p="$policy" '$1 == p { print $2 }' | median)
  awk -v p="$policy" -v n="$nss" -v o="$ossl" 'BEGIN { printf "| %s | %.0f | %.0f | %.1f× |\n", p, n, o, o / n }'
done
