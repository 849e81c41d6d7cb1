"""The vendor tool's issue command in-process: its options and its refusals of bad options and bad
requests (the tool end to end, as separate processes: tests/integration/vendor/test_visionpack_vendor.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionpack.licensing import fingerprint as fpmod, license as fmt


def fake_request(tmp_path: Path, request_doc: dict, **changes) -> Path:
    req = json.loads(json.dumps(request_doc))
    req.update(changes)
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req))
    return path


def issue_cli(vendor, tmp_path, keypair, req: Path, *args: str) -> tuple[int, dict | None]:
    """The tool's main() in-process (its runs as a separate process: tests/integration/vendor/;
    this keeps the suite fast)."""
    out_file = tmp_path / "out.lic"
    rc = vendor.main(["issue", "--key", str(keypair[2]), "--request", str(req), "--out", str(out_file), *args])
    payload = fmt.parse(out_file.read_bytes()).payload if rc == 0 else None
    return rc, payload


def test_issue_options(vendor, tmp_path, keypair, request_doc):
    uuid = "GPU-8c1b3a2e-0000-4000-8000-123456789abc"
    req = fake_request(tmp_path, request_doc, gpus=[fpmod.gpu_hash("GPU-other"), fpmod.gpu_hash(uuid)])
    for spec in ("1", uuid, fpmod.gpu_hash(uuid)):
        rc, p = issue_cli(
            vendor,
            tmp_path,
            keypair,
            req,
            "--gpu",
            spec,
            "--deploys",
            "a,b",
            "--instances",
            "3",
            "--days",
            "365",
            "--customer",
            "Big Co",
            "--not-before",
            "2027-01-01T00:00:00Z",
        )
        assert rc == 0
        assert p["binding"] == {"type": "gpu", "uuid_hash": fpmod.gpu_hash(uuid)}
        assert p["deploys"] == ["a", "b"] and p["instances"] == 3 and p["customer"] == "Big Co"
        assert p["not_before"] == "2027-01-01T00:00:00Z" and p["expires_at"] == "2028-01-01T00:00:00Z"
    rc, p = issue_cli(vendor, tmp_path, keypair, req, "--min-match", "1", "--require", "")
    assert p["rule"] == {"min_match": 1, "required": []} and p["expires_at"] > p["issued_at"]


@pytest.mark.parametrize(
    "args",
    [
        ["--gpu", "5"],
        ["--gpu", "GPU-not-there"],
        ["--min-match", "99"],
        ["--require", "tpm"],
        ["--days", "0"],
        ["--instances", "0"],
        ["--not-before", "tomorrow"],
        ["--deploys", ","],
    ],
)
def test_issue_refuses_bad_options(vendor, tmp_path, keypair, request_doc, args, capsys):
    rc, _ = issue_cli(vendor, tmp_path, keypair, fake_request(tmp_path, request_doc), *args)
    assert rc in (1, 2) and "error" in capsys.readouterr().err
    assert not (tmp_path / "out.lic").exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "x"},
        {"fp_version": 99},
        {"components": {"mac": "zz"}},
        {"components": {k: None for k in fpmod.COMPONENTS}},
        {"gpus": "x"},
    ],
)
def test_issue_refuses_bad_requests(vendor, tmp_path, keypair, request_doc, changes, capsys):
    rc, _ = issue_cli(vendor, tmp_path, keypair, fake_request(tmp_path, request_doc, **changes))
    assert rc == 2 and "error" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert issue_cli(vendor, tmp_path, keypair, bad)[0] == 2
