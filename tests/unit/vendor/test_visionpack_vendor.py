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
from visionpack.licensing import license as fmt
from visionpack.licensing.admin import install_license
from visionpack.licensing.verify import load_public_keys, verify

TOOL = REPO / "vendor" / "visionpack_vendor.py"


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # Plain interpreter, no PYTHONPATH: the tool must find the format code by itself.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


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
    code = ("import sys; from visionpack.licensing.admin import write_request; "
            "write_request(sys.argv[1], customer_hint='ACME')")
    subprocess.run([sys.executable, "-c", code, str(req)], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(REPO / "package")})
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


def fake_request(tmp_path: Path, request_doc: dict, **changes) -> Path:
    req = json.loads(json.dumps(request_doc))
    req.update(changes)
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req))
    return path


def issue_cli(vendor, tmp_path, keypair, req: Path, *args: str) -> tuple[int, dict | None]:
    """The tool's main() in-process (the subprocess path is covered above; this keeps the suite fast)."""
    out_file = tmp_path / "out.lic"
    rc = vendor.main(["issue", "--key", str(keypair[2]), "--request", str(req), "--out", str(out_file), *args])
    payload = fmt.parse(out_file.read_bytes()).payload if rc == 0 else None
    return rc, payload


def test_issue_options(vendor, tmp_path, keypair, request_doc):
    uuid = "GPU-8c1b3a2e-0000-4000-8000-123456789abc"
    req = fake_request(tmp_path, request_doc, gpus=[fpmod.gpu_hash("GPU-other"), fpmod.gpu_hash(uuid)])
    for spec in ("1", uuid, fpmod.gpu_hash(uuid)):
        rc, p = issue_cli(vendor, tmp_path, keypair, req, "--gpu", spec, "--deploys", "a,b", "--instances", "3",
                          "--days", "365", "--customer", "Big Co", "--not-before", "2027-01-01T00:00:00Z")
        assert rc == 0
        assert p["binding"] == {"type": "gpu", "uuid_hash": fpmod.gpu_hash(uuid)}
        assert p["deploys"] == ["a", "b"] and p["instances"] == 3 and p["customer"] == "Big Co"
        assert p["not_before"] == "2027-01-01T00:00:00Z" and p["expires_at"] == "2028-01-01T00:00:00Z"
    rc, p = issue_cli(vendor, tmp_path, keypair, req, "--min-match", "1", "--require", "")
    assert p["rule"] == {"min_match": 1, "required": []} and p["expires_at"] > p["issued_at"]


@pytest.mark.parametrize("args", [["--gpu", "5"], ["--gpu", "GPU-not-there"], ["--min-match", "99"],
                                  ["--require", "tpm"], ["--days", "0"], ["--instances", "0"],
                                  ["--not-before", "tomorrow"], ["--deploys", ","]])
def test_issue_refuses_bad_options(vendor, tmp_path, keypair, request_doc, args, capsys):
    rc, _ = issue_cli(vendor, tmp_path, keypair, fake_request(tmp_path, request_doc), *args)
    assert rc in (1, 2) and "error" in capsys.readouterr().err
    assert not (tmp_path / "out.lic").exists()


@pytest.mark.parametrize("changes", [{"kind": "x"}, {"fp_version": 99}, {"components": {"mac": "zz"}},
                                     {"components": {k: None for k in fpmod.COMPONENTS}}, {"gpus": "x"}])
def test_issue_refuses_bad_requests(vendor, tmp_path, keypair, request_doc, changes, capsys):
    rc, _ = issue_cli(vendor, tmp_path, keypair, fake_request(tmp_path, request_doc, **changes))
    assert rc == 2 and "error" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert issue_cli(vendor, tmp_path, keypair, bad)[0] == 2


def test_keygen_reuse_is_idempotent(tmp_path):
    first = run_tool("keygen", "--out", str(tmp_path / "k"), "--reuse")
    again = run_tool("keygen", "--out", str(tmp_path / "k"), "--reuse")
    assert first.returncode == again.returncode == 0 and first.stdout == again.stdout
    assert len(list((tmp_path / "k").glob("*.key"))) == 1
    assert run_tool("keygen", "--out", str(tmp_path / "k")).returncode == 0  # without --reuse: a second pair
    assert len(list((tmp_path / "k").glob("*.key"))) == 2
