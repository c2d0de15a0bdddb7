# Sourced by the other scripts: puts the project's own Node 24 (installed by setup.sh when the
# system Node is older than 22) and pip's user bin directory first on PATH.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -x "$_root/.tools/node_modules/.bin/node" ]; then
  export PATH="$_root/.tools/node_modules/.bin:$PATH"
fi
export PATH="$HOME/.local/bin:$PATH"
unset _root
