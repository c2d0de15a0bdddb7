#!/usr/bin/env bash
# Sets everything up (see setup.sh) and runs the service with a demo broadcast.
# Then open http://127.0.0.1:8080/watch/demo (the dashboard is at http://127.0.0.1:8080/).
# Extra arguments go to "broadcast-relay serve", e.g. ./scripts/demo.sh --port 9000
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
source scripts/env.sh
exec node dist/cli/main.js serve --demo "$@"
