#!/usr/bin/env bash
# Builds libsrtp2 from Debian's own source package as a static, position-independent
# library on the given crypto engine, for mediasoup's worker:
#
#   bash scripts/mediasoup-worker/build-libsrtp2.sh openssl   # what the worker links (default build)
#   bash scripts/mediasoup-worker/build-libsrtp2.sh nss       # Debian's engine, for comparison only
#
# Why: Debian builds its libsrtp2 on NSS, whose SRTP protect is about 5x slower than
# OpenSSL's (issue 13), and SRTP is most of a worker's cost per consumer.
#
# The source comes from `apt-get source libsrtp2` through a PRIVATE apt configuration
# (its own sources.list with one deb-src line, lists and cache under .cache/): the
# system's /etc/apt is never changed. Needs dpkg-dev (dpkg-source), a C compiler, make,
# and libssl-dev or libnss3-dev (all in setup.sh's package list).
#
# Result, cached and reused without network: .cache/libsrtp2-<engine>-<arch>/ with
# include/srtp2/*.h, lib/libsrtp2.a, bin/srtp_driver (libsrtp's own test and timing
# program), VERSION (the Debian source version) and BUILD-KEY (this script's hash). The prefix is the last line printed.
set -euo pipefail

engine=${1:-openssl}
case "$engine" in
  openssl | nss) ;;
  *) echo "build-libsrtp2: engine must be openssl or nss, got '$engine'" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
prefix="$root/.cache/libsrtp2-$engine-$(uname -m)"
say() { echo "build-libsrtp2: $*" >&2; }
# A change to this script (flags, say) rebuilds the cached library.
script_key=$(sha256sum "$0" | cut -c1-12)

if [ -f "$prefix/lib/libsrtp2.a" ] && [ -x "$prefix/bin/srtp_driver" ] && [ "$(cat "$prefix/BUILD-KEY" 2>/dev/null)" = "$script_key" ]; then
  say "libsrtp2 $(cat "$prefix/VERSION") ($engine) already in $prefix"
  echo "$prefix"
  exit 0
fi

for tool in dpkg-source make cc; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing: apt-get install dpkg-dev make gcc (scripts/setup.sh does)"; exit 1; }
done

# Private apt configuration: only our sources.list, our lists, our cache.
suite=bookworm
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  [ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ] && suite=$VERSION_CODENAME
fi
suite=${BROADCAST_RELAY_DEBIAN_SUITE:-$suite}
apt_dir="$root/.cache/apt-libsrtp2"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d"
echo "deb-src http://deb.debian.org/debian $suite main" >"$apt_dir/sources.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
)
# As root, apt drops to the _apt user for downloads, who cannot write into .cache/.
[ "$(id -u)" -eq 0 ] && apt_opts+=(-o "APT::Sandbox::User=root")

work=$(mktemp -d "$root/.cache/libsrtp2-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "fetching Debian's libsrtp2 source ($suite) with a private apt configuration"
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only libsrtp2 >/dev/null)
dsc=$(ls "$work"/libsrtp2_*.dsc)
(cd "$work" && dpkg-source --no-check -x "$(basename "$dsc")" src >/dev/null)
version=$(basename "$dsc" .dsc | sed 's/^libsrtp2_//')

# Debian's own flags (debian/rules: -O4 = -O3, -fexpensive-optimizations, -funroll-loops,
# -D_REENTRANT), plus -fPIC for the worker's PIE. Only the crypto engine differs.
say "building libsrtp2 $version on $engine (static, -fPIC)"
cd "$work/src"
./configure -q --enable-"$engine" --prefix="$work/prefix" \
  CFLAGS="-O3 -fexpensive-optimizations -funroll-loops -fPIC -D_REENTRANT" >/dev/null
make -s libsrtp2.a test/srtp_driver >/dev/null
make -s install >/dev/null
mkdir -p "$work/prefix/bin"
cp test/srtp_driver "$work/prefix/bin/"
rm -rf "$work/prefix/lib/pkgconfig"
echo "$version" >"$work/prefix/VERSION"
echo "$script_key" >"$work/prefix/BUILD-KEY"

rm -rf "$prefix"
mv "$work/prefix" "$prefix"
say "libsrtp2 $version ($engine) in $prefix"
echo "$prefix"
