#!/usr/bin/env bash
# Build trouble_shooting/trouble_shooting.tar: the diagnostics alone, to copy onto a server and
# run anywhere (EasyDL style: 'tar xf trouble_shooting.tar && bash trouble_shooting.sh').
# Holds trouble_shooting.sh, vp_diag/, the package modules it shares (shared/visionpack/), the sample
# images for the real-inference checks and the guide. Reproducible: sorted names, fixed owner and
# mtime. Usage: bash trouble_shooting/build_tar.sh [OUT]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOP="$(dirname "$HERE")"
OUT="${1:-$HERE/trouble_shooting.tar}"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

cp "$HERE/trouble_shooting.sh" "$STAGE/"
mkdir -p "$STAGE/vp_diag" "$STAGE/samples/faces"
cp "$HERE"/vp_diag/*.py "$STAGE/vp_diag/"
# The package's stdlib-only modules vp_diag shares (vp_diag/shared.py FILES): a copy unpacked on a
# server without the package still reads licenses and checks models with the product's own code.
for f in $(python3 -I -S -B -c 'import sys; sys.path.insert(0, sys.argv[1]); from vp_diag.shared import FILES; print(" ".join(FILES))' "$HERE"); do
  mkdir -p "$(dirname "$STAGE/shared/visionpack/$f")"
  cp "$TOP/package/visionpack/$f" "$STAGE/shared/visionpack/$f"
done
# One image per service (see vp_diag/http.py INFERENCE); the README says where they come from.
for f in cat.jpg astronaut.jpg person.jpg keypoint.jpg faces/obama_2.jpg faces/README.md README.md; do
  [[ -f "$TOP/package/samples/$f" ]] && cp "$TOP/package/samples/$f" "$STAGE/samples/$f"
done
[[ -f "$TOP/docs/troubleshooting.md" ]] && cp "$TOP/docs/troubleshooting.md" "$STAGE/README.md"
chmod 0755 "$STAGE/trouble_shooting.sh"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$STAGE" -cf "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
echo "$OUT"
