"""Each environment check item: passes on a good machine, fails with a message and a fix."""

from __future__ import annotations

import json
import os
import socket
from types import SimpleNamespace

import pytest

from visionpack.errors import EnvironmentCheckFailed, ModelInvalid, PackageCorrupt, PortInUse
from visionpack.installer import envcheck
from visionpack.installer.source import Source


@pytest.fixture
def src(tmp_path):
    top = tmp_path / "pkg"
    (top / "original" / "wheels").mkdir(parents=True)
    (top / "original" / "requirements.lock").write_text("x==1 --hash=sha256:00\n")
    bundle = top / "models" / "b"
    bundle.mkdir(parents=True)
    for name in ("inference.json", "inference.pdiparams", "inference.yml"):
        (bundle / name).write_text("x")
    # and the lock of the Python running the tests, when it is not 3.11 (the unit tier runs under 3.9 too)
    if not Source(top).lock_file.exists():
        Source(top).lock_file.write_text("x==1 --hash=sha256:00\n")
    return Source(top)


def test_python_ok_and_too_old():
    assert envcheck.check_python().ok
    old = envcheck.check_python((3, 6, 9))
    assert not old.ok and "3.6.9 is too old" in old.detail and "CPython 3.9.2 to 3.13" in old.fix
    # 3.8 is refused since 3.9 joined the wheelhouse (issue 18); 3.9.0/3.9.1 too: the cp39 lock's
    # cryptography requires 3.9.2 or newer (Debian 11 ships 3.9.2, RHEL 9 3.9.x later still)
    for too_old in ((3, 8, 18), (3, 9, 0), (3, 9, 1)):
        check = envcheck.check_python(too_old)
        assert not check.ok and "need >= 3.9.2" in check.detail, too_old
    assert envcheck.check_python((3, 9, 2)).ok and envcheck.check_python((3, 9, 18)).ok


def _lock(src: Source, version: tuple[int, int], *files: str) -> None:
    src.lock_for(version).write_text(
        "".join(f"x{i}==1 --hash=sha256:{'0' * 64}  # file: {f} size: 1\n" for i, f in enumerate(files))
    )


def test_wheel_tags_pick_this_interpreters_lock(src):
    (src.top / "original" / "wheelhouse.json").write_text('{"pythons": ["3.11", "3.13"], "options": []}')
    _lock(src, (3, 11), "numpy-2.2.6-cp311-cp311-manylinux_2_28_x86_64.whl", "flask-3.1.3-py3-none-any.whl")
    _lock(
        src,
        (3, 13),
        "numpy-2.2.6-cp313-cp313-manylinux_2_28_x86_64.whl",
        "faiss-1-cp310-abi3-manylinux_2_28_x86_64.whl",
    )
    assert envcheck.check_wheel_tags(src, (3, 11)).ok
    good = envcheck.check_wheel_tags(src, (3, 13))
    assert good.ok and "requirements-cp313.lock fits CPython 3.13" in good.detail
    # 3.12 is supported but not in this package: run another python, or ask for a 3.12 build
    other = envcheck.check_wheel_tags(src, (3, 12))
    assert not other.ok and "wheelhouse is for CPython 3.11, 3.13; this python is 3.12" in other.detail
    assert "'python3.13 package/Install/install.py ...'" in other.fix and "download.sh --python 3.12" in other.fix
    # 3.9 is supported (a package built with --python 3.9 serves it); 3.8 is not, by any package
    cp39 = envcheck.check_wheel_tags(src, (3, 9))
    assert not cp39.ok and "download.sh --python 3.9" in cp39.fix
    old = envcheck.check_wheel_tags(src, (3, 8))
    assert not old.ok and "CPython 3.8 is not supported" in old.fix and "download.sh" not in old.fix


def test_wheel_tags_refuse_a_lock_naming_another_pythons_wheels(src):
    _lock(src, (3, 11), "numpy-2.2.6-cp312-cp312-manylinux_2_28_x86_64.whl", "faiss-1-cp310-abi3-any.whl")
    bad = envcheck.check_wheel_tags(src, (3, 11))
    assert not bad.ok and bad.error is PackageCorrupt and "numpy-2.2.6-cp312" in bad.detail
    assert "faiss" not in bad.detail  # an abi3 wheel for an older minor fits
    _lock(src, (3, 11), "oddly-named.whl", "py2only-1-py2-none-any.whl")
    assert not envcheck.check_wheel_tags(src, (3, 11)).ok


def test_wheel_tags_without_record_or_lock(src, tmp_path):
    # no original/wheelhouse.json: a package from before it, built for 3.11 only
    assert envcheck.check_wheel_tags(src, (3, 11)).ok
    assert "wheelhouse is for CPython 3.11;" in envcheck.check_wheel_tags(src, (3, 10)).detail
    src.lock_for((3, 11)).unlink()
    assert envcheck.check_wheel_tags(src, (3, 11)).ok  # the payload check reports the missing lock
    (src.top / "original" / "wheelhouse.json").write_text("{")
    broken = envcheck.check_wheel_tags(src, (3, 11))
    assert not broken.ok and broken.error is PackageCorrupt and "wheelhouse.json" in broken.detail


def test_cpu_needs_avx(tmp_path):
    good = tmp_path / "good"
    good.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2\n")
    bad = tmp_path / "bad"
    bad.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 sse4_2\n")
    assert envcheck.check_cpu(good).ok
    result = envcheck.check_cpu(bad)
    assert not result.ok and "lacks avx" in result.detail and "AVX" in result.fix
    assert not envcheck.check_cpu(tmp_path / "absent").ok


def test_disk_needs_two_gib(tmp_path):
    def statvfs(free):
        return lambda path: SimpleNamespace(f_bavail=free, f_frsize=1)

    assert envcheck.check_disk(tmp_path / "not" / "yet", statvfs(3 << 30)).ok
    low = envcheck.check_disk(tmp_path, statvfs(1 << 29))
    assert not low.ok and "0.5 GiB free" in low.detail and "--root" in low.fix


def test_memory_needs_one_gib(tmp_path):
    mem = tmp_path / "meminfo"
    mem.write_text("MemTotal: 8000000 kB\nMemFree: 100 kB\nMemAvailable: 2000000 kB\n")
    assert envcheck.check_memory(mem).ok
    mem.write_text("MemTotal: 8000000 kB\nMemAvailable: 500000 kB\n")
    low = envcheck.check_memory(mem)
    assert not low.ok and "need 1 GiB" in low.detail and "worker" in low.fix
    mem.write_text("nothing useful\n")
    assert not envcheck.check_memory(mem).ok


def test_port_in_use_is_its_own_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = envcheck.check_port("127.0.0.1", port)
        assert not result.ok and result.error is PortInUse and f"127.0.0.1:{port}" in result.detail
    assert envcheck.check_port("127.0.0.1", port).ok


def test_payload_missing(src):
    assert envcheck.check_payload(src).ok
    os.rmdir(src.wheels)
    result = envcheck.check_payload(src)
    assert not result.ok and result.error is PackageCorrupt and "original/wheels" in result.detail
    assert "download.sh" in result.fix


def test_checksums_from_verify(src):
    assert envcheck.check_checksums(src, ["b"], lambda top: []).ok
    item = SimpleNamespace(status="CORRUPT", path="original/wheels/x.whl", detail="sha256 ab, expected cd")
    bad = envcheck.check_checksums(src, ["b"], lambda top: [item])
    assert not bad.ok and bad.error is PackageCorrupt
    assert "CORRUPT original/wheels/x.whl (sha256 ab, expected cd)" in bad.detail

    def crash(top):
        raise RuntimeError("boom")

    crashed = envcheck.check_checksums(src, ["b"], crash)
    assert not crashed.ok and not crashed.warn_only and "boom" in crashed.detail


def test_damage_in_a_bundle_this_deploy_does_not_use_only_warns(src):
    other = SimpleNamespace(status="CORRUPT", path="models/face/inference.pdiparams", detail="")
    mine = SimpleNamespace(status="MISSING", path="models/b/inference.yml", detail="")
    sums = SimpleNamespace(
        status="INVALID",
        path="original/SHA256SUMS",
        detail="models/face/inference.json: e68f disagrees with the lock/manifest",
    )
    warn = envcheck.check_checksums(src, ["b"], lambda top: [other, sums])
    assert not warn.ok and warn.warn_only and "does not use" in warn.detail
    fail = envcheck.check_checksums(src, ["b"], lambda top: [other, mine])
    assert not fail.ok and not fail.warn_only and fail.detail.startswith("1 file(s)")
    assert "MISSING models/b/inference.yml" in fail.detail


def test_checksums_without_verifier_is_a_warning(src):
    result = envcheck.check_checksums(src)
    assert not result.ok and result.warn_only


def test_checksums_loads_the_package_verifier(src):
    tool = src.top / "tools" / "download"
    tool.mkdir(parents=True)
    (src.top / "tools" / "__init__.py").write_text("")
    (tool / "__init__.py").write_text("")
    (tool / "verify.py").write_text("def verify(root):\n    return [f'MISSING {root.name}/thing']\n")
    result = envcheck.check_checksums(src)
    assert not result.ok and "MISSING pkg/thing" in result.detail


def test_models_present_or_named(src):
    assert envcheck.check_models(src, ["b"]).ok
    (src.models / "b" / "inference.yml").unlink()
    result = envcheck.check_models(src, ["b", "gone"])
    assert not result.ok and result.error is ModelInvalid
    assert "models/b has no inference.yml" in result.detail and "models/gone is missing" in result.detail


def test_error_for_picks_the_specific_code_only_when_it_is_the_only_kind():
    ok = envcheck.Check("a", True, "fine")
    port = envcheck.Check("port", False, "busy", error=PortInUse)
    disk = envcheck.Check("disk", False, "full")
    warn = envcheck.Check("checksums", False, "no verifier", error=PackageCorrupt, warn_only=True)
    assert envcheck.error_for(envcheck.Report([ok, warn])) is None
    assert type(envcheck.error_for(envcheck.Report([ok, port, warn]))) is PortInUse
    mixed = envcheck.error_for(envcheck.Report([port, disk]))
    assert type(mixed) is EnvironmentCheckFailed and "port, disk" in mixed.detail


def test_report_lines_show_fix_for_failures():
    report = envcheck.Report([envcheck.Check("a", True, "fine"), envcheck.Check("b", False, "bad", "do this")])
    assert report.lines() == ["[  OK] a: fine", "[FAIL] b: bad", "       fix: do this"]


def test_port_claimed_by_another_installed_deploy(tmp_path):
    for name, port, release in (("a", 9000, "1.0.0"), ("b", 9001, "1.0.0"), ("gone", 9002, None)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text(f'{{"release": {json.dumps(release)}, "port": {port}}}')
    claimed = envcheck.check_port_claims(tmp_path, "new", 9000)
    assert not claimed.ok and claimed.error is PortInUse and "configured for a" in claimed.detail
    assert envcheck.check_port_claims(tmp_path, "a", 9000).ok  # its own port
    assert envcheck.check_port_claims(tmp_path, "new", 9002).ok  # not installed any more


def test_a_built_variant_replaces_the_default_pythons_lock(src):
    (src.top / "original" / "wheelhouse.json").write_text('{"pythons": ["3.11"], "options": ["gpu-cu12"]}')
    assert src.lock_for((3, 11)).name == "requirements.lock"  # the variant's lock is not there
    _lock(src, (3, 11), "flask-3.1.3-py3-none-any.whl")
    gpu = src.top / "original" / "requirements-gpu-cu12.lock"
    gpu.write_text(src.lock_for((3, 11)).read_text())
    assert src.lock_for((3, 11)) == gpu
    assert "requirements-gpu-cu12.lock fits CPython 3.11" in envcheck.check_wheel_tags(src, (3, 11)).detail


def test_libgomp_missing_only_warns_with_the_package_to_install():
    assert envcheck.check_libgomp(lambda name: "libgomp.so.1" if name == "gomp" else None).ok
    missing = envcheck.check_libgomp(lambda name: None)
    assert not missing.ok and missing.warn_only and "PaddlePaddle cannot be imported" in missing.detail
    assert "apt-get install libgomp1" in missing.fix and "dnf install libgomp" in missing.fix
