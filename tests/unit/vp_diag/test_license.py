"""vp_diag's standard-library license checks: the package's own licensing modules loaded by path
(vp_diag/shared.py), and what licfile.py mirrors of licensing.verify agreeing with it (the
fingerprint module under 'python3 -I -S': tests/integration/vp_diag/test_diag_license.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from visionpack.errors import LicenseError  # noqa: E402
from visionpack.licensing import fingerprint, license as licmod, verify  # noqa: E402
from visionpack.licensing.clock import ClockMark  # noqa: E402
from vp_diag import (  # noqa: E402
    license as diag_license,  # noqa: E402
    licfile,
    shared,
)
from vp_diag.core import FAIL, Context  # noqa: E402

PKG = REPO / "package" / "visionpack"


@pytest.fixture(scope="module")
def by_path():
    """The licensing modules as vp_diag loads them: by path, under a name of their own."""
    mods = {name: shared.load(f"licensing.{name}", [PKG]) for name in ("license", "fingerprint", "clock")}
    assert all(mods.values()) and mods["license"] is not licmod
    assert Path(mods["license"].__file__) == Path(licmod.__file__)
    return mods


def _vendor():
    spec = importlib.util.spec_from_file_location("vendor_for_diag_unit", REPO / "vendor" / "visionpack_vendor.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def vendor(tmp_path_factory):
    tool = _vendor()
    base = tmp_path_factory.mktemp("diag-unit-vendor")
    priv, pub = tool.keygen(base / "keys")
    keys = base / "licenses"
    keys.mkdir()
    (keys / pub.name).write_bytes(pub.read_bytes())
    return tool, tool.load_private_key(priv), keys


@pytest.fixture(scope="module")
def machine():
    return fingerprint.collect()


def issue(vendor, machine, change=(), now=None, **kw) -> bytes:
    tool, key, _ = vendor
    req = machine.to_request("unit")
    comps = dict(req["components"])
    for name in change:
        comps[name] = fingerprint.component_hash(name, "another-machine")
    req["components"] = comps
    return tool.sign(tool.build_payload(req, now=time.time() if now is None else now, **kw), key)


def test_parse_agrees_with_the_package_reader(vendor, machine, by_path):
    data = issue(vendor, machine, days=45, instances=3)
    mine = by_path["license"].parse(data)
    lic = licmod.parse(data)
    assert mine.kid in licfile.key_ids(by_path["license"], vendor[2])
    assert mine.expires_at == lic.expires_at and mine.not_before == lic.not_before
    assert mine.payload["instances"] == 3 and mine.payload["components"] == dict(lic.components)


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda d: d[: len(d) // 2], "malformed"),
        (lambda d: b"", "malformed"),
        (lambda d: d.replace(b"-----END VISIONPACK LICENSE-----", b""), "malformed"),
        (lambda d: d.splitlines()[0] + b"\n!!!!\n" + d.splitlines()[-1], "malformed"),
    ],
)
def test_damaged_files_are_malformed_for_both(vendor, machine, mutate, reason, by_path):
    bad = mutate(issue(vendor, machine))
    with pytest.raises(by_path["license"].LicenseError) as mine:
        by_path["license"].parse(bad)
    with pytest.raises(LicenseError) as theirs:
        licmod.parse(bad)
    assert mine.value.reason == theirs.value.reason == reason


def test_key_ids_agree_with_verify(vendor, by_path):
    _, _, keys = vendor
    loaded = verify.load_public_keys(keys)
    assert set(licfile.key_ids(by_path["license"], keys)) == set(loaded)
    fake = (
        b"-----BEGIN " + b"PRIVATE KEY-----\nAAAA\n-----END " + b"PRIVATE KEY-----\n"
    )  # armour split: no key-like file
    assert licfile.raw_public_key(fake) is None


@pytest.mark.parametrize("change", [(), ("mac",), ("machine_id",), ("mac", "cpu"), ("mac", "cpu", "disk_serial")])
def test_matching_rule_agrees_with_verify(vendor, machine, change, by_path):
    change = tuple(c for c in change if machine.components.get(c))
    data = issue(vendor, machine, change=change)
    payload = dict(by_path["license"].parse(data).payload)
    mine = licfile.match(payload, dict(machine.components))
    lic = verify.verify_envelope(data, verify.load_public_keys(vendor[2]))
    try:
        verify.evaluate(lic, machine, time.time())
        ok = True
    except LicenseError as exc:
        assert exc.reason == "wrong-machine"
        ok = False
    assert mine["ok"] == ok
    assert sorted(mine["changed"]) == sorted(change)
    theirs = {name: status for name, status in machine.diff(lic) if status != "not-bound"}
    assert {r["component"]: r["status"] for r in mine["rows"]} == theirs


def test_clock_marks_read_as_the_package_writes_them(tmp_path, by_path):
    mark = by_path["clock"].ClockMark(tmp_path)
    assert mark.read() == (None, ["missing", "missing"])
    now = int(time.time())
    ClockMark(tmp_path).check(now)
    assert mark.read() == (ClockMark(tmp_path).read()[0], ["ok", "ok"])
    (tmp_path / "clock.mark").write_text(json.dumps({"v": 1, "high": now + 99999, "mac": "0" * 64}))
    high, labels = mark.read()
    assert (high, labels) == (now, ["bad", "ok"]) and ClockMark(tmp_path).read()[1] == ["bad", "ok"]


def ctx() -> Context:
    return Context(roots=[], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")


def test_every_reason_has_its_repair_and_only_licensing_reasons_are_named(tmp_path):
    assert set(diag_license.fix_table(ctx(), tmp_path)) == set(licmod.REASONS)
    assert set(diag_license.SIGNATURE_REASONS) <= set(licmod.REASONS)
    # A reason of a newer runtime this tool does not know still gets a command to run.
    assert diag_license.fixes(ctx(), tmp_path, "from-the-future") == [
        ctx().install_cmd(tmp_path, "fingerprint", "--diff", str(tmp_path / "licenses" / "license.lic"))
    ]


def test_an_altered_clock_mark_is_clock_rollback_with_the_marks_to_delete(tmp_path, by_path, monkeypatch):
    clk = by_path["clock"]
    monkeypatch.setattr(clk, "DEFAULT_STATE_DIR", tmp_path)
    for name in clk.MARK_NAMES:
        (tmp_path / name).write_text(json.dumps({"v": 1, "high": 1, "mac": "0" * 64}))
    r = diag_license.clock(ctx(), tmp_path, "g", by_path["license"], clk, time.time())
    assert r.status == FAIL and r.detail.startswith("clock-rollback: the clock mark in")
    assert r.fix[0].startswith("timedatectl set-ntp true") and r.fix[1] == (
        f"rm {tmp_path / 'clock.mark'} {tmp_path / '.clock.mark.2'}"
    )
