#!/usr/bin/env bash
# Quick start: from a fresh clone to a running, licensed demo service answering a real photo.
#   bash demo.sh                       # install root ./work
#   VISIONPACK_ROOT=/opt/visionpack bash demo.sh
# Idempotent: run it again and it reuses what is there (downloads, key, license, install).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=${VISIONPACK_ROOT:-$HERE/work}
VENDOR_DIR=${VISIONPACK_VENDOR_DIR:-$HOME/.visionpack-vendor}
INSTALL=(python3 package/Install/install.py --root "$ROOT")
# Every deploy the package's catalog offers, unless told otherwise.
DEPLOYS=${VISIONPACK_DEMO_DEPLOYS:-$(python3 package/Install/install.py search --json | python3 -c 'import json,sys; print(" ".join(d["deploy"] for d in json.load(sys.stdin)["deploys"]))')}

step() { printf '\n== %s\n' "$*"; }

step "1/5 download.sh: wheelhouse, model sources, demo model bundles (idempotent)"
bash download.sh

step "2/5 vendor side: key pair outside the package (in $VENDOR_DIR), public key into licenses/"
# The vendor tool needs 'cryptography'; the package's own wheelhouse has it, so use a small
# tool environment built offline from original/wheels instead of the system Python.
TOOLENV=original/.state/vendor-env
if [[ ! -x $TOOLENV/bin/python ]]; then
  python3 -m venv "$TOOLENV"
  "$TOOLENV/bin/pip" install -q --no-index --find-links original/wheels \
    "$(grep -o '^cryptography==[^ ]*' original/requirements.lock)" \
    "$(grep -o '^cffi==[^ ]*' original/requirements.lock)" "$(grep -o '^pycparser==[^ ]*' original/requirements.lock)"
fi
"$TOOLENV/bin/python" vendor/visionpack_vendor.py keygen --out "$VENDOR_DIR" --reuse
cp "$VENDOR_DIR"/vendor-*.pub licenses/

step "3/5 operator side: fingerprint request, vendor issues a 30-day trial, operator runs 'lu'"
mkdir -p "$ROOT"
"${INSTALL[@]}" fingerprint --out "$ROOT/fingerprint-request.json"
# --instances: a slot per catalog deploy (four) and one spare for an upgrade's standby master.
"$TOOLENV/bin/python" vendor/visionpack_vendor.py issue --key "$(ls "$VENDOR_DIR"/vendor-*.key | head -1)" \
  --request "$ROOT/fingerprint-request.json" --days 30 --customer "demo" --instances 5 \
  --out "$ROOT/trial.lic"
"${INSTALL[@]}" lu "$ROOT/trial.lic"

step "4/5 install and start: $DEPLOYS"
for d in $DEPLOYS; do
  if "${INSTALL[@]}" status "$d" --json >/dev/null 2>&1; then
    "${INSTALL[@]}" start "$d" || true
  else
    "${INSTALL[@]}" install "$d" --host 127.0.0.1
  fi
done
"${INSTALL[@]}" status

step "5/5 real requests"
port_of() { "${INSTALL[@]}" status "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deploys"][0]["port"])'; }
b64() { base64 -w0 "$1"; }
for d in $DEPLOYS; do
  PORT=$(port_of "$d")
  case "$d" in
    demo-classify)
      printf '{"image": "%s", "top_num": 3}' "$(b64 package/samples/cat.jpg)" > "$ROOT/cat-request.json"
      echo "\$ curl -s -X POST http://127.0.0.1:$PORT/demo-classify/ImageClassification -H 'Content-Type: application/json' -d @cat-request.json   # package/samples/cat.jpg"
      curl -s -X POST "http://127.0.0.1:$PORT/demo-classify/ImageClassification" -H 'Content-Type: application/json' -d @"$ROOT/cat-request.json"
      echo ;;
    demo-face)
      # A small demo gallery (4 faces from package/samples/faces), added once.
      python3 package/samples/faces/seed_gallery.py --port "$PORT"
      printf '{"image": "%s", "visualize": false}' "$(b64 package/samples/faces/obama_2.jpg)" > "$ROOT/face-request.json"
      echo "\$ curl -s -X POST http://127.0.0.1:$PORT/face-recognition-infer -H 'Content-Type: application/json' -d @face-request.json   # package/samples/faces/obama_2.jpg"
      curl -s -X POST "http://127.0.0.1:$PORT/face-recognition-infer" -H 'Content-Type: application/json' -d @"$ROOT/face-request.json"
      echo ;;
    demo-keypoint)
      printf '{"image": "%s", "visualize": false}' "$(b64 package/samples/pose/figures.jpg)" > "$ROOT/pose-request.json"
      echo "\$ curl -s -X POST http://127.0.0.1:$PORT/human-keypoint-detection -H 'Content-Type: application/json' -d @pose-request.json   # package/samples/pose/figures.jpg"
      curl -s -X POST "http://127.0.0.1:$PORT/human-keypoint-detection" -H 'Content-Type: application/json' -d @"$ROOT/pose-request.json" | cut -c1-600
      echo ;;
    demo-pose-yolo)
      # The YOLOv8-pose export answers Ultralytics' Results.to_json() shape on /predict (docs/yolov8-pose.md).
      printf '{"image": "%s"}' "$(b64 package/samples/pose/figures.jpg)" > "$ROOT/yolo-pose-request.json"
      echo "\$ curl -s -X POST http://127.0.0.1:$PORT/demo-pose-yolo/predict -H 'Content-Type: application/json' -d @yolo-pose-request.json   # package/samples/pose/figures.jpg"
      curl -s -X POST "http://127.0.0.1:$PORT/demo-pose-yolo/predict" -H 'Content-Type: application/json' -d @"$ROOT/yolo-pose-request.json" | cut -c1-600
      echo ;;
  esac
done
echo
echo "Services are running under $ROOT ('python3 package/Install/install.py --root $ROOT status')."
echo "Stop them with: python3 package/Install/install.py --root $ROOT stop DEPLOY"
