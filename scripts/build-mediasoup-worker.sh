#!/usr/bin/env bash
# Builds mediasoup's C++ worker from the sources npm installed, against Debian's libraries,
# without any download. Used where mediasoup's own postinstall cannot reach GitHub.
#
# Result: node_modules/mediasoup/worker/out/Release/mediasoup-worker (mediasoup's default path,
# so nothing needs MEDIASOUP_WORKER_BIN at run time). A copy is cached in .cache/ keyed by the
# mediasoup version, so a later `npm ci` does not cost another build.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
worker_dir="$root/node_modules/mediasoup/worker"
target="$worker_dir/out/Release/mediasoup-worker"

if [ ! -d "$worker_dir" ]; then
  echo "build-mediasoup-worker: $worker_dir is missing; run npm install first" >&2
  exit 1
fi

version=$(node -p "require('$root/node_modules/mediasoup/package.json').version")
cache="$root/.cache/mediasoup-worker-$version-$(uname -m)"

if [ -x "$target" ]; then
  echo "build-mediasoup-worker: $target already present"
  mkdir -p "$(dirname "$cache")"; [ -x "$cache" ] || cp "$target" "$cache"
  exit 0
fi

if [ -x "$cache" ]; then
  mkdir -p "$(dirname "$target")"
  cp "$cache" "$target"
  echo "build-mediasoup-worker: restored $version from $cache"
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
  echo "build-mediasoup-worker: installing meson >= 1.1 with pip (Debian's 1.0 is too old)"
  python3 -m pip install --quiet --user 'meson>=1.1' 2>/dev/null || python3 -m pip install --quiet 'meson>=1.1' --break-system-packages
  export PATH="$HOME/.local/bin:$PATH"
  hash -r
  meson_ok || { echo "build-mediasoup-worker: meson >= 1.1 not found after pip install" >&2; exit 1; }
fi

# Swap each downloadable subproject for a wrapper around the Debian library.
for sub in "$root"/scripts/mediasoup-worker/subprojects/*/; do
  name=$(basename "$sub")
  rm -f "$worker_dir/subprojects/$name.wrap"
  rm -rf "$worker_dir/subprojects/$name"
  cp -r "$sub" "$worker_dir/subprojects/$name"
done

build_dir="$worker_dir/out/Release/build"
rm -rf "$build_dir"
echo "build-mediasoup-worker: building mediasoup-worker $version (about 2.5 minutes on 2 cores)"
meson setup --buildtype=release -Db_ndebug=true -Db_pie=true -Db_staticpic=true \
  --wrap-mode=nodownload "$build_dir" "$worker_dir"
ninja -C "$build_dir" mediasoup-worker
cp "$build_dir/mediasoup-worker" "$target"
rm -rf "$build_dir"
mkdir -p "$(dirname "$cache")"
cp "$target" "$cache"
echo "build-mediasoup-worker: built $target"
