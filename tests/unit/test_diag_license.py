"""vp_diag's standard-library license checks agree with the licensing package they mirror."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import licfile  # noqa: E402
from visionpack.errors import LicenseError  # noqa: E402
from visionpack.licensing import fingerprint, license as licmod, verify  # noqa: E402
from visionpack.licensing.clock import ClockMark  # noqa: E402

FP_PATH = REPO / "package" / "visionpack" / "licensing" / "fingerprint.py"


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


def test_fingerprint_module_is_stdlib_only_and_agrees(machine):
    """Loaded by path under 'python3 -I -S' (no site-packages) it gives this process's hashes."""
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from vp_diag import licfile; "
            "m = licfile.load_fingerprint_module([__import__('pathlib').Path(sys.argv[2])]); "
            "print(json.dumps(dict(m.collect().components)))")
    out = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", code, str(REPO / "trouble_shooting"), str(FP_PATH)],
                         capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == dict(machine.components)


def test_parse_agrees_with_the_package_reader(vendor, machine):
    data = issue(vendor, machine, days=45, instances=3)
    env, payload = licfile.parse(data)
    lic = licmod.parse(data)
    assert env["kid"] in licfile.key_ids(vendor[2])
    assert licfile.parse_time(payload["expires_at"]) == lic.expires_at
    assert licfile.parse_time(payload["not_before"]) == lic.not_before
    assert payload["instances"] == 3 and payload["components"] == dict(lic.components)


@pytest.mark.parametrize("mutate,reason", [
    (lambda d: d[: len(d) // 2], "malformed"),
    (lambda d: b"", "malformed"),
    (lambda d: d.replace(b"-----END VISIONPACK LICENSE-----", b""), "malformed"),
    (lambda d: d.splitlines()[0] + b"\n!!!!\n" + d.splitlines()[-1], "malformed"),
])
def test_damaged_files_are_malformed_for_both(vendor, machine, mutate, reason):
    bad = mutate(issue(vendor, machine))
    with pytest.raises(licfile.Bad) as mine:
        licfile.parse(bad)
    with pytest.raises(LicenseError) as theirs:
        licmod.parse(bad)
    assert mine.value.reason == theirs.value.reason == reason


def test_key_ids_agree_with_verify(vendor):
    _, _, keys = vendor
    loaded = verify.load_public_keys(keys)
    assert set(licfile.key_ids(keys)) == set(loaded)
    fake = b"-----BEGIN " + b"PRIVATE KEY-----\nAAAA\n-----END " + b"PRIVATE KEY-----\n"  # armour split: no key-like file
    assert licfile.raw_public_key(fake) is None


@pytest.mark.parametrize("change", [(), ("mac",), ("machine_id",), ("mac", "cpu"), ("mac", "cpu", "disk_serial")])
def test_matching_rule_agrees_with_verify(vendor, machine, change):
    change = tuple(c for c in change if machine.components.get(c))
    data = issue(vendor, machine, change=change)
    _, payload = licfile.parse(data)
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


def test_clock_marks_read_as_the_package_writes_them(tmp_path):
    fpmod = licfile.load_fingerprint_module([FP_PATH])
    secret = licfile.clock_secret(fpmod)
    assert licfile.read_marks(tmp_path, secret) == (None, ["missing", "missing"])
    now = int(time.time())
    ClockMark(tmp_path).check(now)
    assert licfile.read_marks(tmp_path, secret) == (ClockMark(tmp_path).read()[0], ["ok", "ok"])
    (tmp_path / "clock.mark").write_text(json.dumps({"v": 1, "high": now + 99999, "mac": "0" * 64}))
    high, labels = licfile.read_marks(tmp_path, secret)
    assert (high, labels) == (now, ["bad", "ok"]) and ClockMark(tmp_path).read()[1] == ["bad", "ok"]
