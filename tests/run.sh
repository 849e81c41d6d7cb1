#!/usr/bin/env bash
# The test command (README, .ci/run): bring original/ and models/ up to date with download.sh,
# build .venv from the package's own wheelhouse plus the test tools, run the linters and the type
# checker (tools/dev/lint.sh), then pytest. Extra arguments go to pytest, e.g.
# `bash tests/run.sh tests/unit -x`; VISIONPACK_SKIP_LINT=1 skips the linters (a quick loop).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${VISIONPACK_SKIP_DOWNLOAD:-0}" != "1" ]]; then
  bash download.sh
fi

# Rebuild the venv only when the runtime lock or the test requirements change.
stamp=$(cat original/requirements.lock tests/requirements.txt | sha256sum | cut -c1-16)
if [[ ! -x .venv/bin/python || "$(cat .venv/.visionpack-stamp 2>/dev/null)" != "$stamp" ]]; then
  echo "[tests] building .venv (runtime wheelhouse + test tools)"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/pip install -q --no-index --find-links original/wheels --require-hashes -r original/requirements.lock
  # Constrain to the locked runtime versions so test tools cannot move them.
  grep -E '^[A-Za-z0-9_.-]+==' original/requirements.lock | sed 's/ .*//' > .venv/constraints.txt
  .venv/bin/pip install -q -c .venv/constraints.txt -r tests/requirements.txt
  echo "$stamp" > .venv/.visionpack-stamp
fi

# Before the suite: a style or type error fails in seconds, not after the long tiers.
if [[ "${VISIONPACK_SKIP_LINT:-0}" != "1" ]]; then
  bash tools/dev/lint.sh
fi

exec .venv/bin/python -m pytest "$@"
