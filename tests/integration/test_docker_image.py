"""The runtime image: built offline by tools/image/build_image.sh, cached, and what is inside."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_docker_fixtures import REPO, docker_client, runtime_image, wheelhouse  # noqa: E402,F401

sys.path.insert(0, str(REPO / "tools" / "image"))
import image as image_tool  # noqa: E402

BUILD = REPO / "tools" / "image" / "build_image.sh"


def in_image(client, ref, *cmd: str, user: str | None = None) -> tuple[int, str]:
    c = client.containers.run(ref.tag, list(cmd), detach=True, network_mode="host", user=user)
    try:
        code = c.wait(timeout=120)["StatusCode"]
        return code, c.logs().decode("utf-8", "replace")
    finally:
        c.remove(force=True)


def test_rebuild_with_unchanged_inputs_reuses_the_tar(runtime_image):
    before = runtime_image.tar.stat()
    started = time.monotonic()
    proc = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reused" in proc.stdout and "debootstrap" not in proc.stdout, proc.stdout
    assert took < 15, took
    after = runtime_image.tar.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


def test_tar_checksum_and_record(runtime_image):
    lock_sha = hashlib.sha256((REPO / "original" / "requirements.lock").read_bytes()).hexdigest()
    assert runtime_image.tar.name == f"visionpack-runtime-{lock_sha[:16]}.tar"
    digest = image_tool.sha256_file(runtime_image.tar)
    assert (
        runtime_image.tar.parent / (runtime_image.tar.name + ".sha256")
    ).read_text() == f"{digest}  {runtime_image.tar.name}\n"
    rec = json.loads(runtime_image.tar.with_suffix(".json").read_text())
    assert rec["sha256"] == digest and rec["size"] == runtime_image.tar.stat().st_size
    assert rec["inputs"] == image_tool.inputs(REPO)
    assert rec["inputs"]["lock_sha256"] == lock_sha and rec["image"] == runtime_image.tag
    # Only the image of the current lock is kept.
    assert sorted(p.name for p in runtime_image.tar.parent.glob("visionpack-runtime-*")) == sorted(
        [runtime_image.tar.name, runtime_image.tar.name + ".sha256", runtime_image.tar.with_suffix(".json").name]
    )


def test_image_config(runtime_image, docker_client):
    img = docker_client.images.get(runtime_image.tag)
    assert img.id == runtime_image.image_id
    cfg = img.attrs["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/visionpack-healthcheck"]
    assert cfg["Cmd"] == ["/usr/local/bin/visionpack-serve"]
    assert "PATH=/opt/visionpack/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in cfg["Env"]
    assert cfg["Labels"]["visionpack.lock"] == runtime_image.tag.split(":")[1]


def test_image_runs_python_311_with_the_locked_wheels_as_a_non_root_user(runtime_image, docker_client):
    code, out = in_image(docker_client, runtime_image, "sh", "-c", "id -u; id -g; id -un; python --version")
    assert code == 0 and out.split() == ["10001", "10001", "visionpack", "Python", out.split()[-1]], out
    assert out.split()[-1].startswith("3.11."), out
    code, out = in_image(docker_client, runtime_image, "python", "-m", "pip", "freeze", "--all")
    assert code == 0, out
    installed = {line.split("==")[0].lower().replace("_", "-") for line in out.split()}
    locked = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "original" / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert locked <= installed, locked - installed
    code, out = in_image(
        docker_client,
        runtime_image,
        "python",
        "-c",
        "import paddle, cv2, flask, gunicorn, faiss; print(paddle.__version__)",
    )
    assert code == 0 and out.strip().splitlines()[-1] == "3.3.1", out


def test_image_has_no_app_code_no_models_and_no_machine_identity(runtime_image, docker_client):
    code, out = in_image(docker_client, runtime_image, "python", "-c", "import visionpack")
    assert code != 0 and "No module named 'visionpack'" in out, out
    # (python3-venv's own pip/setuptools wheels for ensurepip are the only wheels expected.)
    code, out = in_image(
        docker_client,
        runtime_image,
        "sh",
        "-c",
        "find / -xdev -path /usr/share/python-wheels -prune -o \\( -name '*.pdiparams' -o "
        "-name 'inference.yml' -o -name '*.whl' -o -path '*/visionpack/__init__.py' \\) -print; "
        "wc -c < /etc/machine-id",
        user="0:0",
    )
    assert code == 0 and out.split() == ["0"], out
    # Without a release the entry point refuses with a usage message.
    code, out = in_image(docker_client, runtime_image, "/usr/local/bin/visionpack-serve")
    assert code == 2 and "usage: visionpack-serve RELEASE_DIR" in out, out
    code, out = in_image(docker_client, runtime_image, "/usr/local/bin/visionpack-serve", "/nonexistent")
    assert code == 2 and "is not a visionpack release" in out, out


def test_image_tool_inputs_and_cache_decisions(tmp_path):
    repo = tmp_path / "repo"
    (repo / "original" / "images").mkdir(parents=True)
    (repo / "original" / "requirements.lock").write_text("flask==3.1.3 --hash=sha256:00\n")
    inp = image_tool.inputs(repo)
    assert image_tool.check(repo) == f"{image_tool.tar_path(repo, inp).name} is missing"
    tar = image_tool.tar_path(repo, inp)
    tar.write_bytes(b"image bytes")
    image_tool.record(repo, tar, "sha256:abc", 1.0, "http://mirror.example/debian")
    assert image_tool.check(repo, deep=True) is None
    # A different build version is a different image, with the same lock.
    rec = json.loads(tar.with_suffix(".json").read_text())
    rec["inputs"]["build_version"] = image_tool.BUILD_VERSION - 1
    tar.with_suffix(".json").write_text(json.dumps(rec))
    assert image_tool.check(repo) == "inputs changed: build_version"
    image_tool.record(repo, tar, "sha256:abc", 1.0, "m")
    tar.write_bytes(b"image bytes, damaged")
    assert "does not match its record" in image_tool.check(repo)
    # A new lock: another key, and the old image's files are pruned.
    (repo / "original" / "requirements.lock").write_text("flask==3.1.4 --hash=sha256:01\n")
    assert image_tool.check(repo).endswith("is missing")
    assert sorted(image_tool.prune(repo)) == sorted([tar.name, tar.name + ".sha256", tar.with_suffix(".json").name])
    # The rootfs cache does not depend on the lock.
    assert image_tool.rootfs_key(image_tool.inputs(repo)) == image_tool.rootfs_key(inp)


def test_image_tool_reads_the_debian_mirror_from_apt_sources(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb deb-src\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert image_tool.mirror([str(deb822)]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://other.example/debian bookworm main\n")
    assert image_tool.mirror([str(one_line)]) == "http://other.example/debian"
    other_suite = tmp_path / "x.list"
    other_suite.write_text("deb http://old.example/debian bullseye main\n")
    assert image_tool.mirror([str(other_suite)]) == image_tool.DEFAULT_MIRROR
