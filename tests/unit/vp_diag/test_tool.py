"""The tool itself: stdlib only, check modules found by the registry, report layout, exit codes."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys

from tests.paths import REPO

TS = REPO / "trouble_shooting"
sys.path.insert(0, str(TS))

from vp_diag import bundle, registry, report  # noqa: E402
from vp_diag.core import Result  # noqa: E402


def test_every_import_is_standard_library():
    for f in (TS / "vp_diag").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for n in names:
                top = n.split(".")[0]
                assert top in sys.stdlib_module_names or top in ("vp_diag", "__future__"), f"{f.name}: {n}"


def test_syntax_fits_python_3_8():
    """install.py supports python3 >= 3.8, and so must the diagnostics it points operators to."""
    for f in list((TS / "vp_diag").glob("*.py")) + [REPO / "package" / "visionpack" / "licensing" / "fingerprint.py"]:
        ast.parse(f.read_text(), filename=str(f), feature_version=(3, 8))


def test_registry_finds_each_group_and_a_new_module_by_itself(tmp_path):
    groups = {m.GROUP for m in registry.modules()}
    assert groups == {"host", "license", "deploys", "releases", "docker", "processes", "ports", "http", "logs", "models", "deps",
                      "privileges"}
    copy = tmp_path / "ts"
    shutil.copytree(TS / "vp_diag", copy / "vp_diag")
    (copy / "vp_diag" / "gpu.py").write_text(
        'from vp_diag.core import PASS, Result\nGROUP = "gpu"\nORDER = 42\n'
        'def checks(ctx):\n    yield Result("gpu", "driver", PASS, "one more module, nothing else")\n')
    code = "import sys; sys.path.insert(0, sys.argv[1]); from vp_diag import registry; " \
           "print([m.GROUP for m in registry.modules()])"
    out = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", code, str(copy)], capture_output=True, text=True,
                         check=True)
    assert "'gpu'" in out.stdout and out.stdout.index("'deploys'") < out.stdout.index("'gpu'")


def test_text_report_layout():
    rs = [Result("host", "cpu-features", "PASS", "ok"),
          Result("deploy d (/r/d)", "port", "FAIL", "taken", ["ss -ltnp 'sport = :1'"], ["l1"]),
          Result("deploy d (/r/d)", "log-oom", "WARN", "1 kill", ["free -m"]),
          Result("deploy d (/r/d)", "inference", "SKIP", "can't check because of previous errors (ready)")]
    text = report.text(rs, ["/r"])
    assert "Checking host ...\n  PASS  cpu-features: ok\nChecking host ... Finished" in text
    assert "  FAIL  port: taken\n        | l1\n        Try fixing it:\n          ss -ltnp 'sport = :1'" in text
    assert "Summary: 4 checks: 1 PASS, 1 WARN, 1 FAIL, 1 SKIP\nPlease fix the errors above" in text
    doc = json.loads(report.to_json(rs, ["/r"]))
    assert doc["summary"] == {"checks": 4, "pass": 1, "warn": 1, "fail": 1, "skip": 1, "ok": False}
    assert [g["group"] for g in doc["groups"]] == ["host", "deploy d (/r/d)"]


def test_exit_status_and_json_when_nothing_is_installed(tmp_path):
    p = subprocess.run(["bash", str(TS / "trouble_shooting.sh"), "--root", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=60)
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
    p = subprocess.run(["bash", str(TS / "trouble_shooting.sh"), "--root", str(tmp_path), "--json"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == 1 and json.loads(p.stdout)["tool"] == "visionpack trouble_shooting", p.stderr


def test_redaction():
    doc = {"deploy": "d", "api_key": "x", "nested": {"secret": 1, "token_file": "y", "port": 2}, "keys": [1]}
    assert bundle.redact_json(doc) == {"deploy": "d", "api_key": "<redacted>",
                                       "nested": {"secret": "<redacted>", "token_file": "<redacted>", "port": 2},
                                       "keys": [1]}
    text = "port: 1\nsecret_token: abc\n  license_key = zzz\nmonkey: banana\n"
    out = bundle.redact_text(text)
    assert "abc" not in out and "zzz" not in out and "secret_token: <redacted>" in out
    assert "port: 1" in out
