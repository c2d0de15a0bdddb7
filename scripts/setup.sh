#!/usr/bin/env bash
# Sets up everything broadcast-relay needs on a Debian/Ubuntu machine, from nothing:
#   1. system packages (FFmpeg, Chromium for the browser tests, the libraries mediasoup's worker links),
#   2. Node 24 in .tools/ when the system Node is older than 22,
#   3. npm dependencies,
#   4. the mediasoup worker: built here from Debian's libraries (no download), unless
#      BROADCAST_RELAY_PREBUILT_WORKER=1 lets mediasoup's own postinstall fetch its prebuilt binary,
#   5. the TypeScript build (dist/), which the CLI runs.
# Safe to run again: each step skips what is already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# 1. System packages.
# dpkg-dev: dpkg-source, to unpack Debian's libsrtp2 source for the OpenSSL build of SRTP.
# gstreamer1.0-*: a third-party VP8 sender (rtpvp8pay without picture IDs) for the tests.
# redis-server: the cluster's shared state (tests start their own on loopback). coturn: TURN for viewers behind
# UDP-blocking firewalls (tests start their own on loopback).
packages=(ffmpeg chromium libssl-dev libuv1-dev libsrtp2-dev libabsl-dev nlohmann-json3-dev libusrsctp-dev
  catch2 pkg-config ninja-build python3-pip g++ make procps util-linux dpkg-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good redis-server coturn)
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  say "not a Debian-like system: install FFmpeg, Chromium and a C++ toolchain yourself (see README)"
fi

# 2. Node >= 22.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 22 ] && [ ! -x .tools/node_modules/.bin/node ]; then
  say "system Node is $(node --version 2>/dev/null || echo missing); installing Node 24 from npm into .tools/"
  mkdir -p .tools
  npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error node@24 >/dev/null
fi
# shellcheck source=scripts/env.sh
source "$root/scripts/env.sh"
say "node $(node --version), npm $(npm --version)"

# 3 + 4. npm dependencies and the mediasoup worker.
if [ "${BROADCAST_RELAY_PREBUILT_WORKER:-0}" = "1" ]; then
  say "npm ci, with mediasoup's prebuilt worker download"
  npm ci --no-audit --no-fund --loglevel=error
else
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci (mediasoup's postinstall is told to skip its download: the worker is built below)"
    MEDIASOUP_WORKER_BIN="$root/node_modules/mediasoup/worker/out/Release/mediasoup-worker" \
      npm ci --no-audit --no-fund --loglevel=error
  fi
  bash scripts/build-mediasoup-worker.sh
fi

# 5. Build.
say "building TypeScript"
npm run --silent build
say "ready"
