"""The tool itself: stdlib only, Python 3.8 syntax, report layout, redaction (the registry and the
exit codes, run as operators run them: tests/integration/vp_diag/test_diag_tool.py)."""

from __future__ import annotations

import ast
import json
import sys

import pytest

from tests.paths import REPO

TS = REPO / "trouble_shooting"
sys.path.insert(0, str(TS))

from vp_diag import bundle, report  # noqa: E402
from vp_diag.core import Result  # noqa: E402


def test_every_import_is_standard_library():
    if not hasattr(sys, "stdlib_module_names"):  # 3.10's; CI runs the tier on 3.11, issue 18 checked it on 3.9
        pytest.skip("needs sys.stdlib_module_names (Python 3.10+)")
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


def test_text_report_layout():
    rs = [
        Result("host", "cpu-features", "PASS", "ok"),
        Result("deploy d (/r/d)", "port", "FAIL", "taken", ["ss -ltnp 'sport = :1'"], ["l1"]),
        Result("deploy d (/r/d)", "log-oom", "WARN", "1 kill", ["free -m"]),
        Result("deploy d (/r/d)", "inference", "SKIP", "can't check because of previous errors (ready)"),
    ]
    text = report.text(rs, ["/r"])
    assert "Checking host ...\n  PASS  cpu-features: ok\nChecking host ... Finished" in text
    assert "  FAIL  port: taken\n        | l1\n        Try fixing it:\n          ss -ltnp 'sport = :1'" in text
    assert "Summary: 4 checks: 1 PASS, 1 WARN, 1 FAIL, 1 SKIP\nPlease fix the errors above" in text
    doc = json.loads(report.to_json(rs, ["/r"]))
    assert doc["summary"] == {"checks": 4, "pass": 1, "warn": 1, "fail": 1, "skip": 1, "ok": False}
    assert [g["group"] for g in doc["groups"]] == ["host", "deploy d (/r/d)"]


def test_redaction():
    doc = {"deploy": "d", "api_key": "x", "nested": {"secret": 1, "token_file": "y", "port": 2}, "keys": [1]}
    assert bundle.redact_json(doc) == {
        "deploy": "d",
        "api_key": "<redacted>",
        "nested": {"secret": "<redacted>", "token_file": "<redacted>", "port": 2},
        "keys": [1],
    }
    text = "port: 1\nsecret_token: abc\n  license_key = zzz\nmonkey: banana\n"
    out = bundle.redact_text(text)
    assert "abc" not in out and "zzz" not in out and "secret_token: <redacted>" in out
    assert "port: 1" in out
