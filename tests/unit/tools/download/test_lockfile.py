"""tools/download/lockfile.py: the lock table (one runtime lock per CPython), --python parsing, the
build record; and the committed locks themselves: each pins requirements.in's versions for its
Python and names only wheels that Python installs on manylinux x86_64."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.download import lockfile, pipconf  # noqa: E402
from visionpack.installer import (
    envcheck,  # noqa: E402
    source as installer_source,  # noqa: E402
)


def test_one_runtime_lock_per_python_the_default_keeps_its_name() -> None:
    specs = lockfile.lock_specs()
    runtime = [s for s in specs if s.dest == "original/wheels"]
    assert [s.python for s in runtime] == list(lockfile.PYTHONS) == ["3.9", "3.10", "3.11", "3.12", "3.13"]
    assert {s.python: s.lock for s in runtime} == {
        "3.9": "original/requirements-cp39.lock",
        "3.10": "original/requirements-cp310.lock",
        "3.11": "original/requirements.lock",
        "3.12": "original/requirements-cp312.lock",
        "3.13": "original/requirements-cp313.lock",
    }
    assert all(s.prune and s.shipped and s.source == "original/requirements.in" for s in runtime)
    sources = [s for s in specs if s.dest == "original/sources"]
    assert [(s.lock, s.prune) for s in sources] == [("original/sources.lock", False)]
    assert [s.python for s in lockfile.lock_specs(("3.12",)) if s.python] == ["3.12"]


def test_installer_names_the_locks_as_the_download_tools_do(tmp_path: Path) -> None:
    src = installer_source.Source(tmp_path)
    for python in lockfile.PYTHONS:
        version = tuple(int(x) for x in python.split("."))
        assert src.lock_for(version) == tmp_path / lockfile.runtime_lock(python)
    assert installer_source.SUPPORTED_PYTHONS == tuple(tuple(int(x) for x in p.split(".")) for p in lockfile.PYTHONS)
    assert installer_source.DEFAULT_PYTHON == tuple(int(x) for x in lockfile.DEFAULT_PYTHON.split("."))


def test_parse_pythons_sorts_dedups_and_refuses_unsupported() -> None:
    assert lockfile.parse_pythons("3.12, 3.10,3.12") == ("3.10", "3.12")
    assert lockfile.parse_pythons("3.13,3.9") == ("3.9", "3.13")
    for bad in ("3.8", "2.7,3.11", "", "3.1o", "3.14"):
        with pytest.raises(ValueError, match="supported are 3.9,3.10,3.11,3.12,3.13"):
            lockfile.parse_pythons(bad)


def test_build_record_round_trip_default_and_damage(tmp_path: Path) -> None:
    assert lockfile.build_record(tmp_path) == (("3.11",), ())  # a package from before the record
    lockfile.write_build_record(tmp_path, ("3.10", "3.13"), ())
    assert json.loads((tmp_path / lockfile.BUILD_RECORD).read_text()) == {"pythons": ["3.10", "3.13"], "options": []}
    assert lockfile.build_record(tmp_path) == (("3.10", "3.13"), ())
    assert installer_source.Source(tmp_path).pythons() == [(3, 10), (3, 13)]
    for text in ("{", "[]", '{"pythons": "3.11"}', '{"pythons": ["3.8"]}'):
        (tmp_path / lockfile.BUILD_RECORD).write_text(text)
        with pytest.raises(ValueError, match="wheelhouse"):
            lockfile.build_record(tmp_path)


def _fits(filename: str, python: str) -> bool:
    pytags, abis, platforms = filename[:-4].split("-")[-3:]
    plat_ok = platforms == "any" or all("manylinux" in t and t.endswith("x86_64") for t in platforms.split("."))
    tag = lockfile.python_tag(python)
    minor = int(python.split(".")[1])
    py_ok = any(
        t in ("py3", tag)
        and (t == "py3" or tag in abis.split("."))
        or (t.startswith("cp3") and "abi3" in abis.split(".") and int(t[3:]) <= minor)
        for t in pytags.split(".")
    )
    return plat_ok and py_ok


@pytest.mark.parametrize("python", lockfile.PYTHONS)
def test_committed_lock_pins_requirements_in_for_its_python(python: str) -> None:
    lock = REPO / lockfile.runtime_lock(python)
    entries = {e.name: e for e in lockfile.parse_lock(lock)}
    # 3.9 is resolved as 3.9.2 (pipconf.PATCH_FLOOR): markers see the same
    full = pipconf.PATCH_FLOOR.get(python, f"{python}.0")
    env = {"python_version": python, "python_full_version": full, "sys_platform": "linux"}
    pinned = 0
    for line in (REPO / "original/requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        (spec,) = req.specifier
        assert entries[lockfile.canonical_name(req.name)].version == spec.version, (python, line)
        pinned += 1
    assert pinned == 13  # 13 packages, one line each per Python (markers pick it)
    assert entries["paddlepaddle"].version == "3.3.1" and entries["cryptography"].version == "50.0.2"
    # the chosen onnxruntime: 1.32.0 publishes no cp310 wheel, 1.23.2 is the newest that does
    assert entries["onnxruntime"].version == {"3.9": "1.19.2", "3.10": "1.23.2"}.get(python, "1.32.0")
    # CPython 3.9: the newest release of each with a cp39 / abi3<=cp39 manylinux wheel (checked
    # against the registry with pip's resolver for 3.9.2 when chosen; the next releases need >= 3.10)
    cp39 = {"numpy": "2.0.2", "gunicorn": "23.0.0", "faiss-cpu": "1.13.0", "openvino": "2025.3.0", "psycopg": "3.2.13"}
    newer = {"numpy": "2.2.6", "gunicorn": "27.0.1", "faiss-cpu": "1.15.1", "openvino": "2026.4.1", "psycopg": "3.3.9"}
    assert {n: entries[n].version for n in cp39} == (cp39 if python == "3.9" else newer)
    assert entries["psycopg-binary"].version == entries["psycopg"].version
    for e in entries.values():
        assert e.filename.endswith(".whl") and e.size and _fits(e.filename, python), (python, e.filename)
    assert f"# Target: CPython {python} ({lockfile.python_tag(python)})" in lock.read_text()


def test_cp39_is_resolved_as_3_9_2() -> None:
    # cryptography >= 44 declares Requires-Python '!=3.9.0,!=3.9.1': pip's '--python-version 3.9'
    # means 3.9.0 and would refuse it; the installer's floor is the same 3.9.2
    args = pipconf.target_args("3.9")
    assert args[args.index("--python-version") + 1] == "3.9.2" and args[args.index("--abi") + 1] == "cp39"
    args = pipconf.target_args("3.12")
    assert args[args.index("--python-version") + 1] == "3.12"
    assert envcheck.MIN_PYTHON == (3, 9, 2)


def test_a_variant_lock_is_selected_by_its_option_with_its_python() -> None:
    assert not [s for s in lockfile.lock_specs() if s.option]
    (gpu,) = [s for s in lockfile.lock_specs(("3.11",), ("gpu-cu12",)) if s.option]
    assert (gpu.lock, gpu.dest, gpu.python) == ("original/requirements-gpu-cu12.lock", "original/wheels", "3.11")
    assert not [s for s in lockfile.lock_specs(("3.12",), ("gpu-cu12",)) if s.option]  # a 3.11 variant
