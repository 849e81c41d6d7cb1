"""The vendor tool end to end, as separate processes, exactly as the two parties run it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.paths import REPO
from visionpack.licensing import fingerprint as fpmod
from visionpack.licensing.admin import install_license
from visionpack.licensing.verify import load_public_keys, verify

TOOL = REPO / "vendor" / "visionpack_vendor.py"


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # Plain interpreter, no PYTHONPATH: the tool must find the format code by itself.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def test_keygen_request_issue_inspect_verify(tmp_path, machine):
    # Vendor: a key pair outside any package.
    out = run_tool("keygen", "--out", str(tmp_path / "vendor-secret"))
    assert out.returncode == 0, out.stderr
    (priv,) = (tmp_path / "vendor-secret").glob("*.key")
    (pub,) = (tmp_path / "vendor-secret").glob("*.pub")
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and str(pub) in out.stdout
    # Operator: the request file from this machine (what 'install.py fingerprint' calls).
    req = tmp_path / "request.json"
    code = (
        "import sys; from visionpack.licensing.admin import write_request; "
        "write_request(sys.argv[1], customer_hint='ACME')"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(req)],
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "package")},
    )
    # Vendor: issue the default 30-day trial and inspect it.
    lic = tmp_path / "license.lic"
    out = run_tool("issue", "--key", str(priv), "--request", str(req), "--out", str(lic), "--services", "face,keypoint")
    assert out.returncode == 0, out.stderr
    out = run_tool("inspect", str(lic), "--pub", str(pub))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["signature"] == "valid" and report["payload"]["customer"] == "ACME"
    assert report["payload"]["services"] == ["face", "keypoint"] and 29.9 < report["expires_in_days"] <= 30
    # Operator: only the public key ships; the license verifies on this machine.
    keys_dir = tmp_path / "package-licenses"
    keys_dir.mkdir()
    (keys_dir / pub.name).write_bytes(pub.read_bytes())
    verdict = verify(lic.read_bytes(), load_public_keys(keys_dir), fpmod.collect(), time.time(), service="face")
    assert verdict.customer == "ACME" and verdict.binding == "machine"
    assert install_license(lic, tmp_path / "installed", keys_dir).license_id == report["payload"]["id"]


def test_inspect_reports_bad_signature_and_garbage(tmp_path, issue, other_keypair, keypair):
    lic = tmp_path / "l.lic"
    lic.write_bytes(issue(key=other_keypair))
    out = run_tool("inspect", str(lic), "--pub", str(keypair[1]))
    assert out.returncode == 1 and "INVALID: unknown-key" in out.stdout
    out = run_tool("inspect", str(lic))
    assert out.returncode == 0 and "not checked" in out.stdout
    lic.write_bytes(b"\x00garbage")
    out = run_tool("inspect", str(lic))
    assert out.returncode == 1 and "malformed" in out.stderr


@pytest.mark.parametrize("where", ["package/keys", "licenses", "x/releases/1.0", "original/keys"])
def test_keygen_refuses_shipped_directories(tmp_path, where):
    out = run_tool("keygen", "--out", str(tmp_path / where))
    assert out.returncode == 2 and "refusing" in out.stderr
    assert not list(tmp_path.rglob("*.key"))


def test_keygen_refuses_inside_the_repo_package_and_install_roots(tmp_path):
    assert run_tool("keygen", "--out", str(REPO / "package" / "secret")).returncode == 2
    assert run_tool("keygen", "--out", str(REPO / "licenses")).returncode == 2
    root = tmp_path / "unpacked"
    (root / "Install").mkdir(parents=True)
    (root / "Install" / "install.py").write_text("")
    assert run_tool("keygen", "--out", str(root / "keys")).returncode == 2
    assert not (REPO / "package" / "secret").exists()


def test_keygen_reuse_is_idempotent(tmp_path):
    first = run_tool("keygen", "--out", str(tmp_path / "k"), "--reuse")
    again = run_tool("keygen", "--out", str(tmp_path / "k"), "--reuse")
    assert first.returncode == again.returncode == 0 and first.stdout == again.stdout
    assert len(list((tmp_path / "k").glob("*.key"))) == 1
    assert run_tool("keygen", "--out", str(tmp_path / "k")).returncode == 0  # without --reuse: a second pair
    assert len(list((tmp_path / "k").glob("*.key"))) == 2
