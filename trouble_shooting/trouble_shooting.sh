#!/usr/bin/env bash
# trouble_shooting.sh: diagnose a visionpack install (license, deploys, processes, ports, HTTP,
# logs, host, models, runtime). Runs with the SYSTEM python3 and only its standard library
# (-I -S), so it works when the runtime venv is broken. See docs/troubleshooting.md.
#
#   bash trouble_shooting.sh [--root DIR] [DEPLOY] [--json] [--bundle] [--since HOURS]
#
# Exit status: 0 nothing FAILed, 1 something FAILed, 2 usage error, 3 no usable python3.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# A system interpreter first: a venv's python (first on PATH when one is activated) may be the
# very thing that is broken. 3.8, one older than the installer's floor (3.9): a server whose python3
# install.py refuses can still be diagnosed.
pick_python() {
  local c
  for c in /usr/bin/python3 /usr/local/bin/python3 /usr/libexec/platform-python \
           "$(command -v python3 2>/dev/null)" /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3.10 \
           /usr/bin/python3.9 /usr/bin/python3.8; do
    [[ -n "$c" && -x "$c" ]] || continue
    if "$c" -I -S -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

PY="${VP_DIAG_PYTHON:-$(pick_python)}" || true
if [[ -z "${PY:-}" ]]; then
  echo "trouble_shooting.sh: no python3 >= 3.8 found (tried /usr/bin/python3 and PATH)" >&2
  echo "Try fixing it: apt-get install python3   (or yum install python3)" >&2
  exit 3
fi
# -I: ignore PYTHONPATH/PYTHONHOME and the user site; -S: no site-packages at all (stdlib only).
exec "$PY" -I -S -c 'import sys; sys.path.insert(0, sys.argv[1]); from vp_diag.cli import main; sys.exit(main(sys.argv[2:]))' \
  "$HERE" "$@"
