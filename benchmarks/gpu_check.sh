#!/usr/bin/env bash
# gpu_check.sh - the GPU path end to end, on a machine where nvidia-smi answers (docs/gpu.md).
#
#   bash benchmarks/gpu_check.sh [--device gpu:0] [--runs 50] [--no-service]
#
# Not a pytest test: CI has no GPU, and a test that skips itself there is not allowed. Run it by
# hand (or in a GPU pipeline) in a package built with 'bash download.sh --gpu cu12'. Steps:
#   1. nvidia-smi -L answers                                  (else exit 3: nothing to check here)
#   2. the package is the complete GPU variant: 'download.sh --verify', onnxruntime-gpu in original/wheels
#   3. the GPU runtime venv from original/requirements-gpu-cu12.lock (no index, hashes required),
#      kept in original/.state/gpu-check-venv and reused while the lock is unchanged
#   4. the environment check's gpu item for --device (installer/gpucheck.py) passes
#   5. benchmarks/gpu_check.py: every bundle's ONNX rendition on the GPU (CUDA provider, no silent
#      CPU fallback) agrees with the bundle's parity record; GPU vs CPU p50 and GPU memory, as JSON
#   6. (unless --no-service) a license bound to that GPU, demo-classify installed with --device into a
#      temporary root, one real request, /ready; then a second license bound to another GPU
#      (machines with 2+ GPUs) must stop it with gpu-not-licensed; the root is removed afterwards
# Prints one JSON line per step ("step", "ok", ...); exit 0 when every step passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
device=gpu:0 runs=50 service=1
while (( $# )); do
    case "$1" in
        --device) device=$2; shift ;;
        --runs) runs=$2; shift ;;
        --no-service) service=0 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
failed=0
say() { printf '{"step": "%s", "ok": %s, "detail": %s}\n' "$1" "$2" "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$3")"; [[ $2 == true ]] || failed=1; }

# 1
if ! smi=$(nvidia-smi -L 2>&1); then
    say nvidia-smi false "nvidia-smi does not answer here ($smi): this check needs an NVIDIA GPU; nothing checked"
    exit 3
fi
say nvidia-smi true "$smi"

# 2
if ls original/wheels/onnxruntime_gpu-*.whl >/dev/null 2>&1 && bash download.sh --verify >/tmp/gpu_check_verify.$$ 2>&1; then
    say package true "$(tail -n1 /tmp/gpu_check_verify.$$)"
else
    say package false "not the complete GPU package: run 'bash download.sh --gpu cu12' on a connected machine ($(tail -n1 /tmp/gpu_check_verify.$$ 2>/dev/null))"
    rm -f /tmp/gpu_check_verify.$$
    exit 1
fi
rm -f /tmp/gpu_check_verify.$$

# 3
VENV=original/.state/gpu-check-venv
want=$(sha256sum original/requirements-gpu-cu12.lock | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || "$(cat "$VENV/.lock-sha256" 2>/dev/null)" != "$want" ]]; then
    rm -rf "$VENV"
    started=$SECONDS
    if python3.11 -m venv "$VENV" && PIP_CONFIG_FILE=/dev/null "$VENV/bin/python" -m pip --isolated install -q \
        --disable-pip-version-check --no-index --find-links original/wheels --require-hashes --only-binary=:all: \
        -r original/requirements-gpu-cu12.lock; then
        echo "$want" >"$VENV/.lock-sha256"
        say venv true "created $VENV in $((SECONDS - started)) s ($(du -sh "$VENV" | cut -f1))"
    else
        say venv false "pip could not install original/requirements-gpu-cu12.lock from original/wheels"
        exit 1
    fi
else
    say venv true "reused $VENV (lock unchanged)"
fi
PY=$REPO/$VENV/bin/python

# 4
gpu_item=$(PYTHONPATH=package "$PY" -c '
import sys
from pathlib import Path
from visionpack.installer import gpucheck
c = gpucheck.check(sys.argv[1], Path("."))
print(("OK " if c.ok else "FAIL ") + c.detail + ("" if c.ok else " | fix: " + c.fix))
sys.exit(0 if c.ok else 1)' "$device")
if [[ $? == 0 ]]; then say envcheck true "$gpu_item"; else say envcheck false "$gpu_item"; fi

# 5
models_json=$("$PY" benchmarks/gpu_check.py --models models --device "$device" --runs "$runs")
rc=$?
echo "$models_json" | python3 -c 'import json,sys; print(json.dumps({"step": "models", "result": json.load(sys.stdin)}))'
if (( rc == 0 )); then say models true "every bundle on $device agrees with its parity record"; else say models false "see the models step above"; fi

# 6
if (( service )); then
    if ! python3 package/Install/install.py install --help | grep -q -- '--device'; then
        say service false "install.py install has no --device option in this release"
    else
        ROOT=$(mktemp -d /tmp/gpu-check-root.XXXXXX)
        VENDOR=$ROOT/vendor INSTALL=(python3 package/Install/install.py --root "$ROOT")
        index=${device#gpu:}
        VP=(original/.state/vendor-env/bin/python vendor/visionpack_vendor.py)
        [[ -x original/.state/vendor-env/bin/python ]] || { python3 -m venv original/.state/vendor-env &&
            original/.state/vendor-env/bin/pip install -q --no-index --find-links original/wheels cryptography; }
        "${VP[@]}" keygen --out "$VENDOR" >/dev/null && cp "$VENDOR"/vendor-*.pub licenses/gpu-check-vendor.pub
        "${INSTALL[@]}" fingerprint --out "$ROOT/request.json" >/dev/null
        if ! lic_out=$("${VP[@]}" issue --key "$(ls "$VENDOR"/vendor-*.key)" --request "$ROOT/request.json" \
            --gpu "$index" --days 1 --customer gpu-check --out "$ROOT/gpu.lic" 2>&1) ||
            ! lic_out=$("${INSTALL[@]}" lu "$ROOT/gpu.lic" 2>&1); then
            say license false "a license bound to $device could not be issued or installed: $lic_out"
        elif "${INSTALL[@]}" install demo-classify --host 127.0.0.1 --port 18701 --device "$device" >"$ROOT/install.log" 2>&1; then
            printf '{"image": "%s", "top_num": 1}' "$(base64 -w0 package/samples/cat.jpg)" >"$ROOT/cat.json"
            answer=$(curl -s -X POST http://127.0.0.1:18701/demo-classify/ImageClassification \
                -H 'Content-Type: application/json' -d @"$ROOT/cat.json")
            ready=$(curl -s http://127.0.0.1:18701/ready)
            if grep -q '"results"' <<<"$answer"; then say service true "answer $answer; /ready $ready"
            else say service false "answer $answer; /ready $ready"; fi
            others=$(nvidia-smi -L | wc -l)
            if (( others > 1 )); then
                other=$(( index == 0 ? 1 : 0 ))
                "${VP[@]}" issue --key "$(ls "$VENDOR"/vendor-*.key)" --request "$ROOT/request.json" --gpu "$other" \
                    --days 1 --customer gpu-check --out "$ROOT/other.lic" >/dev/null
                "${INSTALL[@]}" lu "$ROOT/other.lic" >/dev/null
                refused=""
                for _ in $(seq 1 90); do  # the gate re-reads a replaced license file at the next request
                    refused=$(curl -s -X POST http://127.0.0.1:18701/demo-classify/ImageClassification \
                        -H 'Content-Type: application/json' -d @"$ROOT/cat.json")
                    grep -q 337000 <<<"$refused" && break
                    sleep 1
                done
                if grep -q 'gpu-not-licensed' <(curl -s http://127.0.0.1:18701/ready); then
                    say license-gpu true "license for gpu:$other refuses the deploy on $device: $refused"
                else say license-gpu false "expected gpu-not-licensed on /ready, got: $(curl -s http://127.0.0.1:18701/ready)"; fi
            else
                say license-gpu true "one GPU: the wrong-GPU refusal needs a second GPU (unit-tested)"
            fi
        else
            say service false "install failed: $(tail -n 5 "$ROOT/install.log")"
        fi
        "${INSTALL[@]}" rmall --purge >/dev/null 2>&1
        rm -f licenses/gpu-check-vendor.pub
        rm -rf "$ROOT"
    fi
fi
exit "$failed"
