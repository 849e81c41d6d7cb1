"""Record the checksums of an Ultralytics export dropped into models/ (docs/yolov8-pose.md) in its manifest.json.

    python3 tools/convert/export_manifest.py models/my_pose [DIR ...]   # (re)record these exports
    python3 tools/convert/export_manifest.py --models models            # every export lacking a manifest

A deploy's models are checked against their manifest's sha256s by ``download.sh --verify`` and by
``install`` (tools/download/verify.py), and a catalog model without a manifest.json is reported missing,
so an export copied in as ``yolo export`` wrote it needs one before it can be installed. For a PaddleX
export tools/convert/onnx_rendition.py writes it; an Ultralytics export gets no rendition, so this
writes the manifest alone: every file of the directory (the ``*_paddle_model/`` folder's by their
relative path), the files themselves untouched. Standard library only: it runs with the server's
python3. download.sh runs the ``--models`` form after the demo models are built.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

MANIFEST = "manifest.json"
KIND = "ultralytics-export"


def is_export(d: Path) -> bool:
    """An Ultralytics export directory: no PaddleX inference.yml, and a *.onnx or a *_paddle_model/ folder
    (or the folder itself). What it holds is checked by the keypoint service when it starts."""
    if not d.is_dir() or (d / "inference.yml").exists():
        return False
    return any(d.glob("*.onnx")) or any(d.glob("*_paddle_model")) or (d / "metadata.yaml").is_file()


def file_hashes(d: Path) -> dict[str, str]:
    out = {}
    for f in sorted(d.rglob("*")):
        rel = f.relative_to(d).as_posix()
        if f.is_file() and rel != MANIFEST and not any(p.startswith(".") or p == "__pycache__" for p in rel.split("/")):
            h = hashlib.sha256()
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[rel] = h.hexdigest()
    return out


def write(d: Path) -> dict[str, str]:
    """Record ``d``'s files in its manifest (other keys of an existing manifest, e.g. our demo's, are kept)."""
    path = d / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    manifest.setdefault("name", d.name)
    manifest.setdefault("kind", KIND)
    manifest.setdefault("task", "pose")
    manifest["files"] = file_hashes(d)
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return manifest["files"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=Path, help="export directories to (re)record")
    ap.add_argument("--models", type=Path, help="record every export under this directory that has no manifest yet")
    a = ap.parse_args(argv)
    todo = list(a.dirs)
    for d in todo:
        if not is_export(d):
            print(f"export_manifest: {d} holds no Ultralytics export (*.onnx or *_paddle_model/)", file=sys.stderr)
            return 2
    if a.models is not None and a.models.is_dir():
        todo += [d for d in sorted(a.models.iterdir()) if is_export(d) and not (d / MANIFEST).exists()]
    for d in todo:
        print(f"{d}: manifest.json records {len(write(d))} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
