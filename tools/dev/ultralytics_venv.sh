#!/usr/bin/env bash
# The Ultralytics test venv (tests/integration/test_ultralytics_compat.py, benchmarks/bench_yolo_pose.py):
# ultralytics + torch + onnx/onnxslim + x2paddle/six + paddle, ~6 GB, so never in .venv nor the
# runtime wheelhouse. Built once per requirements file (tests/ultralytics/requirements.txt, its
# sha256 is the key) under a cache outside the clone, so CI runs on the same machine reuse it;
# prints the venv's python. VISIONPACK_TEST_CACHE moves the cache (default ~/.cache/visionpack).
set -euo pipefail
cd "$(dirname "$0")/../.."
req=tests/ultralytics/requirements.txt
key=$(sha256sum "$req" | cut -c1-16)
cache=${VISIONPACK_TEST_CACHE:-$HOME/.cache/visionpack}
venv=$cache/ultralytics-venv-$key
mkdir -p "$cache"
exec 9>"$cache/ultralytics-venv.lock"
flock 9  # one build at a time; a second caller waits and reuses it
if [[ ! -x $venv/bin/python || ! -f $venv/.complete ]]; then
  rm -rf "$venv" "$venv.tmp"
  started=$(date +%s)
  python3.11 -m venv "$venv.tmp" >&2
  "$venv.tmp/bin/pip" install -q --no-deps -r "$req" >&2
  touch "$venv.tmp/.complete"
  mv "$venv.tmp" "$venv"
  # Older keys' venvs are 6 GB each: keep only this one.
  find "$cache" -maxdepth 1 -name 'ultralytics-venv-*' ! -name "ultralytics-venv-$key" -exec rm -rf {} + >&2
  echo "[ultralytics-venv] built $venv in $(( $(date +%s) - started )) s" >&2
fi
echo "$venv/bin/python"
