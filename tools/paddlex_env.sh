#!/usr/bin/env bash
# Build (once) the PaddleX reference environment used by compatibility tests and benchmarks.
#
#   bash tools/paddlex_env.sh            # create or check .paddlex-venv, print its python path
#   bash tools/paddlex_env.sh --check    # exit 0 if ready, 1 if not; never installs
#   PADDLEX_VENV=/some/dir bash tools/paddlex_env.sh
#
# The env holds PaddleX itself ('paddlex[cv,serving]==3.7.2') beside paddlepaddle==3.3.1, the
# same Paddle the service runs, so a difference between PaddleX and us is a difference in
# pre/post-processing, never in the engine. It is never shipped and never imported by the
# package; tests run it in a subprocess.
#
# Idempotent: a stamp file records the pinned requirements; when it matches and the imports
# work, nothing is installed. Concurrent callers (several test sessions) serialise on a lock.
# Only the last line of stdout is the python path, so callers can do
#   PY=$(bash tools/paddlex_env.sh | tail -n1)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${PADDLEX_VENV:-$here/.paddlex-venv}"
python="${PADDLEX_BASE_PYTHON:-python3}"
reqs=("paddlepaddle==3.3.1" "paddlex[cv,serving]==3.7.2")
stamp_text="$(printf '%s\n' "${reqs[@]}")"
stamp_file="$venv/.visionpack-paddlex-stamp"

log() { echo "[paddlex_env] $*" >&2; }

ready() {
  [[ -x "$venv/bin/python" ]] || return 1
  [[ "$(cat "$stamp_file" 2>/dev/null)" == "$stamp_text" ]] || return 1
  # PaddleX checks model hosters on import unless told not to; we are offline.
  PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK=True "$venv/bin/python" - <<'EOF' >/dev/null 2>&1 || return 1
import paddle, paddlex
assert paddle.__version__ == "3.3.1", paddle.__version__
assert paddlex.__version__ == "3.7.2", paddlex.__version__
import fastapi, uvicorn  # the serving extra
EOF
  [[ -x "$venv/bin/paddlex" ]] || return 1
}

if [[ "${1:-}" == "--check" ]]; then
  ready && { echo "$venv/bin/python"; exit 0; }
  exit 1
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
if ! flock -w 1800 9; then
  log "timed out waiting for another build of $venv"
  exit 1
fi

if ready; then
  log "ready: $venv"
  echo "$venv/bin/python"
  exit 0
fi

"$python" - <<'EOF' || { log "need Python 3.11 (PaddleX 3.7.2 + paddlepaddle 3.3.1 wheels); set PADDLEX_BASE_PYTHON"; exit 1; }
import sys
sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
EOF

# A half-built env (interrupted install, other pins) is rebuilt from scratch rather than patched.
if [[ -e "$venv" ]]; then
  log "rebuilding $venv (stamp or imports do not match)"
  rm -rf "$venv"
fi
log "creating $venv (this downloads PaddleX and its dependencies through pip; a few minutes)"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >&2 || log "pip self-upgrade failed; continuing with the bundled pip"
# One resolver run for both pins, so pip cannot move paddlepaddle while satisfying paddlex.
"$venv/bin/pip" install -q "${reqs[@]}" >&2
printf '%s\n' "${reqs[@]}" >"$stamp_file"

if ! ready; then
  log "installed, but the import check failed; see: $venv/bin/python -c 'import paddlex'"
  exit 1
fi
log "ready: $venv"
echo "$venv/bin/python"
