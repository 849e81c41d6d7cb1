"""The package modules vp_diag shares run on a bare system python3 (-S -I: no site-packages).

trouble_shooting.sh must work when the runtime venv is broken, so what it loads of the package by
path (vp_diag/shared.py: the bundle module, the license parser, fingerprint, clock mark) may import
nothing but the standard library and each other. Run in a child interpreter on a directory that
holds only the files build_tar.sh ships (shared.FILES): a module importing anything else fails here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import shared  # noqa: E402

PROBE = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from vp_diag import shared
pkg, bundle_dir = Path(sys.argv[2]), Path(sys.argv[3])
loaded = {name: shared.load(name, [pkg]) is not None for name in shared.MODULES}
core = shared.load("bundle", [pkg])
expected = core.declared_checksums(core.read_manifest(bundle_dir))
answers = {
    "files": core.files(bundle_dir).missing(),
    "graph": core.files(bundle_dir).model_file.name,
    "checksums": core.checksums(bundle_dir),
    "damage": [[d.name, d.problem] for d in core.damaged(bundle_dir, expected)],
    "task": core.infer_task({"Preprocess": [{"type": "TopDownEvalAffine"}]}),
    "format": core.engine_kind(core.read_manifest(bundle_dir), str(bundle_dir)),
}
top = {name.split(".")[0] for name in sys.modules}
foreign = sorted(n for n in top - {"__main__"} if n not in sys.stdlib_module_names and not n.startswith("vp_diag"))
print(json.dumps({"loaded": loaded, "answers": answers, "foreign": foreign, "site": "site" in sys.modules}))
"""


def _only_shipped_files(dest: Path) -> Path:
    pkg = dest / "visionpack"
    for rel in shared.FILES:
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "package" / "visionpack" / rel, pkg / rel)
    return pkg


def test_shared_modules_load_with_the_standard_library_alone(tmp_path):
    pkg = _only_shipped_files(tmp_path / "copy")
    b = tmp_path / "b"
    b.mkdir()
    (b / "inference.json").write_bytes(b"graph")
    (b / "inference.pdiparams").write_bytes(b"tampered")
    manifest = {
        "schema": 1,
        "task": "image_classification",
        "files": {
            "inference.json": hashlib.sha256(b"graph").hexdigest(),
            "inference.pdiparams": hashlib.sha256(b"params").hexdigest(),  # a corrupt checksum
            "inference.yml": hashlib.sha256(b"yml").hexdigest(),  # a missing file
        },
    }
    (b / "manifest.json").write_text(json.dumps(manifest))
    out = subprocess.run(
        ["/usr/bin/python3", "-S", "-I", "-B", "-c", PROBE, str(REPO / "trouble_shooting"), str(pkg), str(b)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["site"] is False and doc["foreign"] == []
    assert doc["loaded"] == {name: True for name in shared.MODULES}
    a = doc["answers"]
    assert a["files"] == ["inference.yml"] and a["graph"] == "inference.json"
    assert set(a["checksums"]) == {"inference.json", "inference.pdiparams", "manifest.json"}
    assert a["damage"] == [["inference.pdiparams", "mismatch"], ["inference.yml", "missing"]]
    assert (a["task"], a["format"]) == ("keypoint_detection", "paddle")
    assert not list(pkg.rglob("__pycache__"))  # a diagnosis writes nothing where it reads


def test_a_module_missing_from_the_copy_is_not_loaded(tmp_path):
    pkg = _only_shipped_files(tmp_path / "copy")
    (pkg / "fsutil.py").unlink()  # bundle.py imports it
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; from vp_diag import shared; "
        "print(shared.load('bundle', [Path(sys.argv[2])]), shared.load('licensing.license', [Path(sys.argv[2])]) "
        "is not None)"
    )
    out = subprocess.run(
        ["/usr/bin/python3", "-S", "-I", "-B", "-c", code, str(REPO / "trouble_shooting"), str(pkg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["None", "True"]
