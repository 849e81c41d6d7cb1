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
DEPLOYS=${VISIONPACK_DEMO_DEPLOYS:-demo-classify}

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
"$TOOLENV/bin/python" vendor/visionpack_vendor.py issue --key "$(ls "$VENDOR_DIR"/vendor-*.key | head -1)" \
  --request "$ROOT/fingerprint-request.json" --days 30 --customer "demo" --instances 4 \
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

step "5/5 a real request: package/samples/cat.jpg to demo-classify"
PORT=$("${INSTALL[@]}" status demo-classify --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deploys"][0]["port"])')
printf '{"image": "%s", "top_num": 3}' "$(base64 -w0 package/samples/cat.jpg)" > "$ROOT/cat-request.json"
echo "\$ curl -s -X POST http://127.0.0.1:$PORT/demo-classify/ImageClassification -H 'Content-Type: application/json' -d @cat-request.json"
curl -s -X POST "http://127.0.0.1:$PORT/demo-classify/ImageClassification" \
  -H 'Content-Type: application/json' -d @"$ROOT/cat-request.json"
echo
echo
echo "Services are running under $ROOT. Stop them with: python3 package/Install/install.py --root $ROOT stop demo-classify"
