"""Operator helpers: request file, fingerprint diff, verified atomic license update."""

from __future__ import annotations

import json
import os
import time

import pytest

from visionpack.errors import LicenseError
from visionpack.fsutil import atomic_write
from visionpack.licensing import admin, instances, license as fmt
from visionpack.licensing.clock import ClockMark


def test_write_request(tmp_path, machine):
    doc = admin.write_request(tmp_path / "req.json", customer_hint="ACME")
    on_disk = json.loads((tmp_path / "req.json").read_text())
    assert on_disk == doc and doc["customer_hint"] == "ACME"
    assert doc["components"] == dict(machine.components)


def test_install_keeps_previous_and_is_atomic(tmp_path, issue, keypair):
    first, second = tmp_path / "first.lic", tmp_path / "second.lic"
    first.write_bytes(issue(customer="first"))
    second.write_bytes(issue(customer="second"))
    target = tmp_path / "licenses"
    v = admin.install_license(first, target, keypair[1])
    assert v.customer == "first" and not (target / admin.PREVIOUS_NAME).exists()
    v = admin.install_license(second, target, keypair[1], now=time.time())
    assert v.customer == "second"
    assert (target / admin.LICENSE_NAME).read_bytes() == second.read_bytes()
    assert (target / admin.PREVIOUS_NAME).read_bytes() == first.read_bytes()
    assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda issue, other: b"", "malformed"),
        (lambda issue, other: issue()[:100], "malformed"),
        (lambda issue, other: issue(key=other), "unknown-key"),
        (lambda issue, other: issue(now=time.time() - 60 * 86400), "expired"),
        (lambda issue, other: issue(not_before="2099-01-01T00:00:00Z"), "not-yet-valid"),
        (lambda issue, other: issue(now=time.time() + 86400), "issued-in-future"),
        (lambda issue, other: issue(change=("machine_id", "cpu")), "wrong-machine"),
    ],
)
def test_bad_new_license_changes_nothing(tmp_path, issue, keypair, other_keypair, make, expected):
    target = tmp_path / "licenses"
    good = tmp_path / "good.lic"
    good.write_bytes(issue(customer="good"))
    admin.install_license(good, target, keypair[1])
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in target.iterdir()}
    bad = tmp_path / "bad.lic"
    bad.write_bytes(make(issue, other_keypair))
    with pytest.raises(LicenseError) as exc:
        admin.install_license(bad, target, keypair[1])
    assert exc.value.reason == expected
    assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in target.iterdir()} == before


def test_install_missing_file(tmp_path, keypair):
    with pytest.raises(LicenseError) as exc:
        admin.install_license(tmp_path / "nope.lic", tmp_path / "licenses", keypair[1])
    assert exc.value.reason == "missing" and not (tmp_path / "licenses").exists()
    with pytest.raises(LicenseError) as exc:
        admin.install_license(tmp_path, tmp_path / "licenses", keypair[1])
    assert exc.value.reason == "missing"


def test_install_is_not_deploy_specific(tmp_path, issue, keypair):
    new = tmp_path / "n.lic"
    new.write_bytes(issue(deploys="only-this", services="face"))
    assert admin.install_license(new, tmp_path / "licenses", keypair[1]).deploys == ("only-this",)


def test_install_checks_clock_mark_when_given(tmp_path, issue, keypair):
    state = tmp_path / "state"
    ClockMark(state).check(time.time() + 10 * 86400)  # time was seen 10 days ahead of now
    new = tmp_path / "n.lic"
    new.write_bytes(issue())
    with pytest.raises(LicenseError) as exc:
        admin.install_license(new, tmp_path / "licenses", keypair[1], state_dir=state)
    assert exc.value.reason == "clock-rollback"


def test_diff_report(tmp_path, issue, keypair, machine, other_keypair):
    changed = next(n for n in machine.present() if n != "machine_id")
    lic = tmp_path / "l.lic"
    atomic_write(lic, issue(change=(changed,), min_match=1))
    rows = admin.diff_report(lic, keypair[1])
    by_name = {r["component"]: r for r in rows}
    assert by_name["machine_id"] == {"component": "machine_id", "status": "match", "required": True}
    assert by_name[changed]["status"] == "mismatch" and not by_name[changed]["required"]
    assert {r["status"] for r in rows} <= {"match", "mismatch", "absent", "not-bound"}
    # A forged file gets no diff: the signature is checked first.
    atomic_write(lic, issue(key=other_keypair))
    with pytest.raises(LicenseError) as exc:
        admin.diff_report(lic, keypair[1])
    assert exc.value.reason == "unknown-key"


def test_read_license_file_caps_size(tmp_path):
    big = tmp_path / "big.lic"
    big.write_bytes(b"A" * (fmt.MAX_BYTES * 3))
    assert len(admin.read_license_file(big)) == fmt.MAX_BYTES + 1
    with pytest.raises(LicenseError) as exc:
        fmt.parse(admin.read_license_file(big))
    assert exc.value.reason == "malformed"


def test_check_for_start_and_status(tmp_path, issue, keypair):
    lic_dir = tmp_path / "licenses"
    state = tmp_path / "state"
    for pub in keypair[1].iterdir():
        (lic_dir / pub.name).parent.mkdir(exist_ok=True)
        (lic_dir / pub.name).write_bytes(pub.read_bytes())
    with pytest.raises(LicenseError) as exc:
        admin.check_for_start(lic_dir, "shop", "face", state_dir=state)
    assert exc.value.reason == "missing"
    snap = admin.status(lic_dir, state_dir=state)
    assert snap["licensed"] is False and snap["reason"] == "missing"
    new = tmp_path / "n.lic"
    new.write_bytes(issue(deploys="shop", services="face"))
    admin.install_license(new, lic_dir, lic_dir)
    assert admin.check_for_start(lic_dir, "shop", "face", state_dir=state).deploys == ("shop",)
    with pytest.raises(LicenseError) as exc:
        admin.check_for_start(lic_dir, "shop", "keypoint", state_dir=state)
    assert exc.value.reason == "service-not-licensed"
    snap = admin.status(lic_dir, "shop", "face", state_dir=state)
    assert snap["licensed"] is True and snap["days_left"] >= 29
    assert isinstance(snap["instances_running"], list)
    json.dumps(snap)


def test_start_instance_uses_the_license_limit(tmp_path, issue, keypair):
    lic_dir = tmp_path / "licenses"
    lic_dir.mkdir()
    for pub in keypair[1].iterdir():
        (lic_dir / pub.name).write_bytes(pub.read_bytes())
    new = tmp_path / "n.lic"
    # A limit above whatever else runs on this machine right now, so the test is not
    # disturbed by real services; the limit itself is tested in test_instances.py.
    new.write_bytes(issue(instances=instances.count() + 1))
    admin.install_license(new, lic_dir, lic_dir)
    verdict, slot = admin.start_instance(lic_dir, "shop", "face", {"port": 8701}, state_dir=tmp_path / "s")
    try:
        mine = [h for h in instances.holders() if h.get("pid") == os.getpid()]
        assert mine and mine[0]["license"] == verdict.license_id and mine[0]["port"] == 8701
    finally:
        slot.release()
