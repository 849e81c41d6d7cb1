"""The tool run as operators run it: the registry in a bare 'python3 -I -S' finding a new module by
itself, trouble_shooting.sh's exit status and JSON, and a hostile python environment kept out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.paths import REPO

TS = REPO / "trouble_shooting"
sys.path.insert(0, str(TS))

from vp_diag import registry  # noqa: E402


def test_registry_finds_each_group_and_a_new_module_by_itself(tmp_path):
    groups = {m.GROUP for m in registry.modules()}
    assert groups == {
        "host",
        "license",
        "deploys",
        "releases",
        "docker",
        "processes",
        "ports",
        "http",
        "logs",
        "models",
        "deps",
        "privileges",
        "gpu",
        "backends",
        "gallery",
    }
    copy = tmp_path / "ts"
    shutil.copytree(TS / "vp_diag", copy / "vp_diag")
    (copy / "vp_diag" / "sensors.py").write_text(
        'from vp_diag.core import PASS, Result\nGROUP = "sensors"\nORDER = 42\n'
        'def checks(ctx):\n    yield Result("sensors", "camera", PASS, "one more module, nothing else")\n'
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from vp_diag import registry; "
        "print([m.GROUP for m in registry.modules()])"
    )
    out = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "-c", code, str(copy)], capture_output=True, text=True, check=True
    )
    assert "'sensors'" in out.stdout and out.stdout.index("'deploys'") < out.stdout.index("'sensors'")


def test_exit_status_and_json_when_nothing_is_installed(tmp_path):
    p = subprocess.run(
        ["bash", str(TS / "trouble_shooting.sh"), "--root", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    doc = json.loads(p.stdout)
    assert p.returncode == 1 and doc["summary"]["fail"] == 1
    assert "is not a visionpack install root" in doc["groups"][0]["checks"][0]["detail"]
    p = subprocess.run(["bash", str(TS / "trouble_shooting.sh"), "--bogus"], capture_output=True, text=True)
    assert p.returncode == 2


def test_works_with_a_hostile_python_environment(tmp_path):
    """PYTHONPATH pointing at junk and a venv first on PATH do not reach the tool (-I -S)."""
    (tmp_path / "vp_diag").mkdir()
    (tmp_path / "vp_diag" / "__init__.py").write_text("raise SystemExit('wrong vp_diag imported')\n")
    (tmp_path / "json.py").write_text("raise SystemExit('shadowed json')\n")
    env = {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    p = subprocess.run(
        ["bash", str(TS / "trouble_shooting.sh"), "--root", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert p.returncode == 1 and json.loads(p.stdout)["tool"] == "visionpack trouble_shooting", p.stderr
