#!/usr/bin/env bash
# Builds mediasoup's C++ worker from the sources npm installed, against Debian's libraries,
# without any download beyond Debian's own archive. Used where mediasoup's own postinstall
# cannot reach GitHub.
#
# SRTP (BROADCAST_RELAY_SRTP):
#   openssl (default)  libsrtp2 from Debian's source package rebuilt on OpenSSL, linked
#                      statically (scripts/mediasoup-worker/build-libsrtp2.sh). Debian's own
#                      libsrtp2 is built on NSS, whose SRTP protect is about 5x slower.
#                      Result: node_modules/mediasoup/worker/out/Release/mediasoup-worker,
#                      mediasoup's default path, so nothing needs MEDIASOUP_WORKER_BIN.
#   nss                Debian's shared libsrtp2 (NSS), for comparison. Result:
#                      node_modules/mediasoup/worker/out/Release/mediasoup-worker-nss; run the
#                      relay with MEDIASOUP_WORKER_BIN set to it. Both builds can exist at once.
#
# Patches in scripts/mediasoup-worker/patches/ are applied to the npm-installed worker
# sources first (idempotently: an already applied patch is skipped).
#
# Each build is cached in .cache/ under a key made of the mediasoup version, the machine,
# the SRTP engine and a hash of the patches, the meson wrappers, the meson flags and the
# libsrtp2 build, so a later `npm ci` costs no build, and a change to any of them (a new
# patch, say) rebuilds instead of reusing an unpatched worker. A stamp beside the binary
# records the key it was built with.
#
#   bash scripts/build-mediasoup-worker.sh                 # build (or restore) the OpenSSL worker
#   BROADCAST_RELAY_SRTP=nss bash scripts/build-mediasoup-worker.sh
#   bash scripts/build-mediasoup-worker.sh --print-path    # the selected build's binary path
#   bash scripts/build-mediasoup-worker.sh --print-key     # its cache key
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
here="$root/scripts/mediasoup-worker"
worker_dir="$root/node_modules/mediasoup/worker"
srtp=${BROADCAST_RELAY_SRTP:-openssl}
say() { echo "build-mediasoup-worker: $*" >&2; }

case "$srtp" in
  openssl) target="$worker_dir/out/Release/mediasoup-worker" ;;
  nss) target="$worker_dir/out/Release/mediasoup-worker-nss" ;;
  *) say "BROADCAST_RELAY_SRTP must be openssl or nss, got '$srtp'"; exit 2 ;;
esac
if [ "${1:-}" = "--print-path" ]; then
  echo "$target"
  exit 0
fi

if [ ! -d "$worker_dir" ]; then
  say "$worker_dir is missing; run npm install first"
  exit 1
fi

version=$(node -p "require('$root/node_modules/mediasoup/package.json').version")

srtp_prefix=""
srtp_version="debian-$(dpkg-query -W -f='${Version}' libsrtp2-dev 2>/dev/null || echo unknown)"
if [ "$srtp" = openssl ]; then
  srtp_prefix=$(bash "$here/build-libsrtp2.sh" openssl | tail -n 1)
  srtp_version=$(cat "$srtp_prefix/VERSION")
fi

# What a build depends on besides mediasoup's own sources. Change recipe when the meson
# flags below change (the scripts' comments and other tools are left out of the key, so
# editing them does not cost a rebuild).
recipe="meson release ndebug pie staticpic nodownload"
inputs_hash=$(
  {
    echo "$recipe"
    (cd "$here" && find patches subprojects -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    echo "libsrtp2 $srtp_version $(cat "$srtp_prefix/BUILD-KEY" 2>/dev/null)"
  } | sha256sum | cut -c1-12
)
key="$version-$(uname -m)-$srtp-$inputs_hash"
cache="$root/.cache/mediasoup-worker-$key"
stamp="$target.build-key"
if [ "${1:-}" = "--print-key" ]; then
  echo "$key"
  exit 0
fi

if [ -x "$target" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
  say "$target already present ($key)"
  [ -x "$cache" ] || { mkdir -p "$(dirname "$cache")"; cp "$target" "$cache"; }
  exit 0
fi

if [ -x "$cache" ]; then
  mkdir -p "$(dirname "$target")"
  cp "$cache" "$target.tmp" && mv "$target.tmp" "$target"
  echo "$key" >"$stamp"
  say "restored $key from $cache"
  exit 0
fi

meson_ok() {
  command -v meson >/dev/null 2>&1 || return 1
  python3 - "$(meson --version)" <<'PY'
import sys
major, minor = (int(x) for x in sys.argv[1].split('.')[:2])
sys.exit(0 if (major, minor) >= (1, 1) else 1)
PY
}
if ! meson_ok; then
  say "installing meson >= 1.1 with pip (Debian's 1.0 is too old)"
  python3 -m pip install --quiet --user 'meson>=1.1' 2>/dev/null || python3 -m pip install --quiet 'meson>=1.1' --break-system-packages
  export PATH="$HOME/.local/bin:$PATH"
  hash -r
  meson_ok || { say "meson >= 1.1 not found after pip install"; exit 1; }
fi

# Fixes mediasoup has upstream but 3.12.16 lacks. patch's --dry-run tells "applies"
# from "already applied" (its reverse applies), so running twice is harmless.
for p in "$here"/patches/*.patch; do
  [ -e "$p" ] || continue
  if patch -d "$worker_dir" -p1 -R -s -f --dry-run <"$p" >/dev/null 2>&1; then
    say "patch $(basename "$p") already applied"
  elif patch -d "$worker_dir" -p1 -N -s -f --dry-run <"$p" >/dev/null 2>&1; then
    patch -d "$worker_dir" -p1 -N -s -f <"$p" >/dev/null
    say "applied patch $(basename "$p")"
  else
    say "patch $(basename "$p") does not apply to mediasoup $version's worker sources; update it"
    exit 1
  fi
done

# Swap each downloadable subproject for a wrapper around the Debian library (libsrtp2:
# around the static OpenSSL build above, or Debian's NSS one when its prefix is empty).
for sub in "$here"/subprojects/*/; do
  name=$(basename "$sub")
  rm -f "$worker_dir/subprojects/$name.wrap"
  rm -rf "$worker_dir/subprojects/$name"
  cp -r "$sub" "$worker_dir/subprojects/$name"
done

build_dir="$worker_dir/out/Release/build-$srtp"
rm -rf "$build_dir"
say "building mediasoup-worker $version with SRTP on $srtp (about 11 CPU-minutes: 5-6 minutes on 2 idle cores)"
start=$(date +%s)
meson setup --buildtype=release -Db_ndebug=true -Db_pie=true -Db_staticpic=true \
  --wrap-mode=nodownload -Dlibsrtp2:static_prefix="$srtp_prefix" "$build_dir" "$worker_dir"
ninja -C "$build_dir" mediasoup-worker
cp "$build_dir/mediasoup-worker" "$target.tmp" && mv "$target.tmp" "$target"
echo "$key" >"$stamp"
rm -rf "$build_dir"
mkdir -p "$(dirname "$cache")"
cp "$target" "$cache"
say "built $target ($key) in $(($(date +%s) - start)) s"
