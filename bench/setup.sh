#!/usr/bin/env bash
# `scripts/setup` from nothing: a fresh clone of a revision, no virtualenv, with uv's cache
# empty (cold: every wheel downloaded) or shared (warm: what a second checkout on the same
# machine sees); and the floor it is compared with, pip installing the same lock into a
# new virtualenv. The Debian packages are assumed installed (apt is not what is measured).
#   bench/setup.sh REV [REPEATS]     e.g. bench/setup.sh HEAD 2; bench/setup.sh cc9adb3 2
set -euo pipefail
repository=$(cd "$(dirname "$0")/.." && pwd)
revision=${1:?a revision to measure}
repeats=${2:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() { local start=$SECONDS; "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; return 1; }; echo $((SECONDS - start)); }
fresh() {
  rm -rf "$work/clone" "$work/cache"
  git clone -q "$repository" "$work/clone"
  git -C "$work/clone" checkout -q "$revision"
}
for run in $(seq "$repeats"); do
  fresh
  cold=$(UV_CACHE_DIR="$work/cache" seconds "$work/clone/scripts/setup")
  fresh
  warm=$(seconds "$work/clone/scripts/setup")
  python=$("$work/clone/.venv/bin/python" -c 'import sys; print(sys.executable)' | xargs readlink -f)
  rm -rf "$work/pip-venv"
  "$python" -m venv "$work/pip-venv"
  pip=$(seconds "$work/pip-venv/bin/python" -m pip install --quiet --no-cache-dir -r "$work/clone/requirements.lock")
  fallback=n/a
  if grep -q INSTALLER "$work/clone/scripts/setup"; then  # the pip fallback, from nothing
    fresh
    fallback=$(INSTALLER=pip PIP_NO_CACHE_DIR=1 seconds "$work/clone/scripts/setup")s
  fi
  echo "$revision run $run: setup cold cache ${cold}s, warm cache ${warm}s, INSTALLER=pip (no cache) ${fallback}; pip install -r requirements.lock (no cache) ${pip}s; $($python --version)"
done
