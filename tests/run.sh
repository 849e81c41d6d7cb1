#!/usr/bin/env bash
# The test command (README, .ci/run): bring original/ and models/ up to date with download.sh,
# build .venv from the package's own wheelhouse plus the test tools, then run pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh tests/unit -x`.
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

exec .venv/bin/python -m pytest "$@"
