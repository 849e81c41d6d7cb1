#!/usr/bin/env bash
# download.sh - fill original/ with everything an offline install needs, then build the demo models.
#
#   bash download.sh [--no-models]   download (hash-checked, idempotent), build models, write checksums
#   bash download.sh --verify        offline check: every locked file, model bundle and checksum present
#   bash download.sh --image         also build the Docker runtime image (tools/image/build_image.sh)
#   bash download.sh --python 3.10,3.12   wheelhouse for these CPythons only (default: 3.9-3.13)
#   bash download.sh --gpu cu12      also the GPU package variant's wheels (onnxruntime-gpu + CUDA 12 libs, 1.98 GB more; docs/gpu.md)
#
# Runs from any directory; works relative to its own. Exit codes: see original/README.md.
set -euo pipefail

readonly EXIT_USAGE=2 EXIT_BUILDENV=7 EXIT_MODELS=8 EXIT_BUSY=11

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

usage() {
    sed -n '2,9p' "$ROOT/download.sh" | sed 's/^# \{0,1\}//'
}

verify=0 image=0 models=1 pythons="" options=()
want_pythons=0 want_gpu=0
for arg in "$@"; do
    if (( want_pythons )); then pythons="$arg"; want_pythons=0; continue; fi
    if (( want_gpu )); then options+=(--option "gpu-$arg"); want_gpu=0; continue; fi
    case "$arg" in
        --python) want_pythons=1 ;;
        --gpu) want_gpu=1 ;;
        --python=*) pythons="${arg#--python=}" ;;
        --verify) verify=1 ;;
        --image) image=1 ;;
        --no-models) models=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "download.sh: unknown option: $arg" >&2; usage >&2; exit "$EXIT_USAGE" ;;
    esac
done
if (( want_pythons )); then echo "download.sh: --python needs a list, e.g. 3.10,3.12" >&2; exit "$EXIT_USAGE"; fi
if (( want_gpu )); then echo "download.sh: --gpu needs a CUDA flavour: cu12" >&2; exit "$EXIT_USAGE"; fi

# Helpers need only the standard library: any python3 >= 3.8 runs them.
HOST_PY="${VISIONPACK_HOST_PYTHON:-python3}"
if ! "$HOST_PY" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
    echo "download.sh: need python3 >= 3.8 on PATH (or VISIONPACK_HOST_PYTHON)" >&2
    exit "$EXIT_USAGE"
fi

if (( verify )); then
    # No network is touched: hashes only.
    exec "$HOST_PY" -m tools.download.verify --root "$ROOT"
fi

STATE="$ROOT/original/.state"
LOGS="$STATE/logs"
mkdir -p "$LOGS"

# One download.sh at a time per tree: two would race on the scratch directory and the venv.
exec 9>"$STATE/download.lock"
if ! flock -n 9; then
    echo "download.sh: another download.sh is running on $ROOT (lock $STATE/download.lock)" >&2
    exit "$EXIT_BUSY"
fi

started=$SECONDS
steps=5
(( models )) || steps=3
(( image )) && steps=$((steps + 1))
step=0
say_step() { step=$((step + 1)); echo "==> [$step/$steps] $*"; }

run_helper() {
    local rc=0
    "$HOST_PY" -m "$@" --root "$ROOT" || rc=$?
    if (( rc != 0 )); then
        echo "download.sh: FAILED at step $step (exit $rc): see the message above; logs in $LOGS" >&2
        exit "$rc"
    fi
}

say_step "wheelhouse: original/requirements*.lock -> original/wheels/"
# --build: the demo models are built with CPython 3.11's wheels even when 3.11 is not shipped.
run_helper tools.download.fetch wheels ${pythons:+--python "$pythons"} "${options[@]}" $( (( models )) && echo --build )

say_step "model sources: original/sources.lock -> original/sources/"
run_helper tools.download.fetch sources

if (( models )); then
    say_step "build environment: original/.state/buildenv/ from the wheelhouse (no index)"
    BUILDENV="$STATE/buildenv"
    STAMP="$STATE/buildenv.lock-sha256"
    want="$(sha256sum original/requirements.lock | cut -d' ' -f1)"
    if [[ -x "$BUILDENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        echo "    reused (requirements.lock unchanged: sha256 ${want:0:16}...)"
    else
        BUILD_PY="${VISIONPACK_PYTHON:-}"
        if [[ -z "$BUILD_PY" ]]; then
            for cand in python3.11 python3; do
                if command -v "$cand" >/dev/null && "$cand" -c \
                    'import sys, platform; sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'
                then BUILD_PY="$cand"; break; fi
            done
        fi
        if [[ -z "$BUILD_PY" ]]; then
            echo "download.sh: the models are built with the locked wheels, which need CPython 3.11 on" \
                 "Linux x86_64; none found (set VISIONPACK_PYTHON, or use --no-models)" >&2
            exit "$EXIT_BUILDENV"
        fi
        rm -rf "$BUILDENV" "$STAMP"
        log="$LOGS/buildenv.log"
        echo "    creating with $BUILD_PY (log: $log)"
        # --isolated + no config file: only original/wheels is looked at, whatever pip's configuration says.
        if ! { "$BUILD_PY" -m venv "$BUILDENV" &&
               PIP_CONFIG_FILE=/dev/null "$BUILDENV/bin/python" -m pip --isolated install \
                   --disable-pip-version-check --no-index --find-links original/wheels \
                   --find-links original/.state/build-wheels \
                   --require-hashes --only-binary=:all: -r original/requirements.lock; } >"$log" 2>&1
        then
            tail -n 15 "$log" | sed 's/^/    /' >&2
            echo "download.sh: FAILED to create the build environment from original/wheels (log: $log)" >&2
            rm -rf "$BUILDENV"
            exit "$EXIT_BUILDENV"
        fi
        echo "$want" >"$STAMP.tmp" && mv -f "$STAMP.tmp" "$STAMP"
        echo "    created ($(du -sh "$BUILDENV" | cut -f1))"
    fi
    # The ONNX converter (paddle2onnx + onnx, original/convert.lock): a build-machine tool, never shipped;
    # fetched into original/.state/convert-wheels/ and installed into the build environment once.
    run_helper tools.convert.convert_env

    say_step "demo models: tools/convert/build_models.py -> models/"
    if [[ ! -f tools/convert/build_models.py ]]; then
        echo "download.sh: tools/convert/build_models.py not found: cannot build the demo models" >&2
        exit "$EXIT_MODELS"
    fi
    rc=0
    "$BUILDENV/bin/python" tools/convert/build_models.py --sources original/sources --out models \
        2>&1 | tee "$LOGS/build_models.log" | sed 's/^/    /' || rc=$?
    if (( rc != 0 )); then
        echo "download.sh: FAILED to build the demo models (build_models.py exit $rc; log: $LOGS/build_models.log)" >&2
        exit "$EXIT_MODELS"
    fi
    # Each bundle's ONNX rendition + parity record (docs/backends.md); a bundle whose Paddle files and
    # converter are unchanged is left as it is, so a second run converts nothing.
    "$BUILDENV/bin/python" tools/convert/onnx_rendition.py --models models \
        2>&1 | tee "$LOGS/onnx_rendition.log" | sed 's/^/    /' || rc=$?
    if (( rc != 0 )); then
        echo "download.sh: FAILED to make the ONNX renditions (onnx_rendition.py exit $rc; log: $LOGS/onnx_rendition.log)" >&2
        exit "$EXIT_MODELS"
    fi
    # An Ultralytics export copied into models/ as written (docs/yolov8-pose.md) gets no rendition: only a
    # manifest.json recording its files' sha256s, which --verify and install check.
    "$HOST_PY" tools/convert/export_manifest.py --models models | sed 's/^/    /' || rc=$?
    if (( rc != 0 )); then
        echo "download.sh: FAILED to record the Ultralytics exports' checksums (export_manifest.py exit $rc)" >&2
        exit "$EXIT_MODELS"
    fi
fi

if (( image )); then
    say_step "runtime image: tools/image/build_image.sh -> original/images/ (docs/docker.md)"
    # Exit 2 (usage) or 3 (a prerequisite is missing or the build failed; log .state/logs/image.log).
    bash "$ROOT/tools/image/build_image.sh" || exit $?
fi

say_step "checksums: original/SHA256SUMS"
run_helper tools.download.sums

if (( models )); then
    # Prove the result the same way an offline machine will check it.
    rc=0
    "$HOST_PY" -m tools.download.verify --root "$ROOT" --problems-only | sed 's/^/    /' || rc=$?
    if (( rc != 0 )); then
        echo "download.sh: the tree does not verify (exit $rc)" >&2
        exit "$rc"
    fi
else
    echo "    models not built (--no-models): 'bash download.sh --verify' will report them missing"
fi
echo "download.sh: done in $((SECONDS - started)) s ($(du -sh original/wheels | cut -f1) wheels," \
     "$(du -sh original/sources | cut -f1) sources)"
