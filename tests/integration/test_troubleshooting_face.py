"""trouble_shooting.sh on a real demo-face install (MTCNN + dlib ResNet): its real inference
check, the tar unpacked elsewhere, finding the root by itself, and the support bundle."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest
from test_installer_fixtures import kill_leftovers, new_root, shared_runtime, source_tree, wheelhouse  # noqa: F401
from test_troubleshooting_helpers import REPO, Vendor, find, install_demo, not_passing, run_diag, run_installer

DEPLOY = "demo-face"
BUNDLES = ("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "dlib_resnet_face")


@pytest.fixture(scope="module")
def face(tmp_path_factory, shared_runtime):
    if not all((REPO / "models" / b / "manifest.json").is_file() for b in BUNDLES):
        subprocess.run(["bash", str(REPO / "download.sh")], cwd=REPO, check=True, timeout=3600)
    vendor = Vendor(tmp_path_factory.mktemp("face-vendor"))
    root = new_root(tmp_path_factory.mktemp("diag-face"), shared_runtime)
    install_demo(root, vendor, deploy=DEPLOY, host="127.0.0.1", force=True)
    yield root
    run_installer(REPO, root, "stop", DEPLOY)
    kill_leftovers(root)


def test_face_deploy_all_pass_with_a_real_recognition(face):
    rc, doc, _ = run_diag("--root", str(face))
    assert rc == 0 and not not_passing(doc), not_passing(doc)
    inf = find(doc, "inference")
    assert inf["detail"].startswith("POST /demo-face/FaceRecognition with obama_2.jpg: 1 face(s) found"), inf
    assert "faiss" not in find(doc, "python-deps")["lines"]  # imported fine
    assert find(doc, "reachable")["detail"].startswith("listens on loopback only")
    for b in BUNDLES:
        assert find(doc, f"model {b}")["status"] == "PASS"


def test_tar_runs_unpacked_elsewhere(face, tmp_path):
    out = tmp_path / "trouble_shooting.tar"
    subprocess.run(
        ["bash", str(REPO / "trouble_shooting" / "build_tar.sh"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dest = tmp_path / "elsewhere"
    dest.mkdir()
    with tarfile.open(out) as tar:
        names = tar.getnames()
        tar.extractall(dest)
    assert "./trouble_shooting.sh" in names and "./samples/faces/obama_2.jpg" in names and "./samples/cat.jpg" in names
    rc, doc, _ = run_diag("--root", str(face), script=dest / "trouble_shooting.sh")
    assert rc == 0 and not not_passing(doc), not_passing(doc)
    # Without the package next to it the hints still name install.py, relative to the package.
    assert find(doc, "inference")["status"] == "PASS"


def test_finds_the_root_by_itself(face):
    rc, doc, _ = run_diag(DEPLOY, env={"VISIONPACK_ROOT": str(face)})
    assert str(face) in doc["roots"]
    # No hint at all: the running gunicorn's VISIONPACK_CONFIG in /proc leads to the root.
    rc, doc, _ = run_diag(DEPLOY)
    assert str(face) in doc["roots"]
    assert find(doc, "process", DEPLOY, root=face)["status"] == "PASS"
    rc, doc, _ = run_diag("--root", str(face), "no-such-deploy")
    assert rc == 1 and find(doc, "deploy")["detail"].startswith("deploy 'no-such-deploy' is not installed")


def test_support_bundle_has_logs_and_config_without_secrets(face, tmp_path):
    cfg = face / DEPLOY / "releases" / "1.0.0" / "config.yml"
    good = cfg.read_text()
    evil = face / "licenses" / "vendor-0000000000000000.key"
    # A fake key, its armour split so no tracked file looks like one.
    evil.write_text("-----BEGIN " + "PRIVATE KEY-----\nAAAA\n-----END " + "PRIVATE KEY-----\n")
    try:
        cfg.write_text(good + "secret_token: s3cr3t-value\napi_key: another-s3cr3t\n")
        out = tmp_path / "support.tar.gz"
        proc = subprocess.run(
            [
                "bash",
                str(REPO / "trouble_shooting" / "trouble_shooting.sh"),
                "--root",
                str(face),
                "--bundle",
                "--bundle-out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert f"support bundle written: {out}" in proc.stdout
        with tarfile.open(out) as tar:
            files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    finally:
        cfg.write_text(good)
        evil.unlink()
    assert {
        "report.txt",
        "report.json",
        "root0/demo-face/state.json",
        "root0/demo-face/release/config.yml",
        "root0/demo-face/logs/error.log",
        "root0/licenses/license.lic",
    } <= set(files)
    assert not [n for n in files if n.endswith(".key")]
    blob = b"".join(files.values())
    assert b"s3cr3t" not in blob and b"PRIVATE KEY" not in blob
    assert b"secret_token: <redacted>" in files["root0/demo-face/release/config.yml"]
    assert json.loads(files["report.json"])["summary"]["fail"] == 0
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
