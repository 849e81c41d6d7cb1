"""LicenseGate: cached verdict, re-verification triggers, hot swap under load, logging."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from visionpack.errors import LicenseError
from visionpack.fsutil import atomic_write
from visionpack.licensing.gate import LicenseGate


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path, keypair):
    lic_dir = tmp_path / "licenses"
    lic_dir.mkdir()
    return {"path": lic_dir / "license.lic", "keys": keypair[1], "state": tmp_path / "state"}


def make_gate(env, clock=None, deploy="shop", service="classification") -> LicenseGate:
    return LicenseGate(env["path"], env["keys"], env["state"], deploy, service, clock=clock or time.time)


def reason_of(gate: LicenseGate) -> str:
    with pytest.raises(LicenseError) as exc:
        gate.check()
    return exc.value.reason


def records(caplog, level):
    return [r for r in caplog.records if r.name == "visionpack.license" and r.levelno == level]


def test_cached_within_interval(env, issue):
    atomic_write(env["path"], issue())
    clock = FakeClock()
    gate = make_gate(env, clock)
    first = gate.check()
    for _ in range(500):
        assert gate.check() is first
    assert gate.verifications == 1
    clock.now += 59
    gate.check()
    assert gate.verifications == 1
    clock.now += 2  # 61 s after the first verification
    gate.check()
    assert gate.verifications == 2


def test_file_change_is_picked_up_at_once(env, issue):
    atomic_write(env["path"], issue(customer="old"))
    clock = FakeClock()
    gate = make_gate(env, clock)
    assert gate.check().customer == "old"
    atomic_write(env["path"], issue(customer="new"))  # rename: new inode
    assert gate.check().customer == "new"
    assert gate.verifications == 2


def test_in_place_rewrite_is_picked_up(env, issue):
    atomic_write(env["path"], issue(customer="old"))
    gate = make_gate(env, FakeClock())
    gate.check()
    env["path"].write_bytes(issue(customer="edited in place"))  # same inode, new size/mtime/ctime
    assert gate.check().customer == "edited in place"


def test_hot_swap_under_load_never_fails(env, issue):
    licenses = [issue(customer=f"c{i}") for i in range(25)]
    atomic_write(env["path"], licenses[0])
    gate = make_gate(env)
    gate.check()
    failures: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                seen.add(gate.check().customer)
            except BaseException as exc:  # any failure at all is a failed request
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for data in licenses[1:]:
        atomic_write(env["path"], data)
        time.sleep(0.01)
    time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert gate.check().customer == "c24"
    assert len(seen) > 2  # swaps really happened while requests were running


def test_verdict_change_logged_once(env, issue, caplog):
    atomic_write(env["path"], issue(customer="good"))
    clock = FakeClock()
    gate = make_gate(env, clock)
    with caplog.at_level(logging.INFO, logger="visionpack.license"):
        gate.check()
        expired = issue(now=clock.now - 40 * 86400, days=30)
        atomic_write(env["path"], expired)
        for _ in range(3):
            assert reason_of(gate) == "expired"
            clock.now += 61  # forces re-verification; the verdict stays the same
        assert gate.verifications == 4
        atomic_write(env["path"], issue(customer="renewed"))
        assert gate.check().customer == "renewed"
    errors = records(caplog, logging.ERROR)
    infos = [r for r in records(caplog, logging.INFO) if "valid for" in r.getMessage()]
    assert len(errors) == 1 and "expired" in errors[0].getMessage() and "shop/classification" in errors[0].getMessage()
    assert [("good" in r.getMessage(), "renewed" in r.getMessage()) for r in infos] == [(True, False), (False, True)]


def test_expiring_soon_warns_once_a_day(env, issue, caplog):
    clock = FakeClock()
    atomic_write(env["path"], issue(now=clock.now - 26 * 86400, days=30))
    gate = make_gate(env, clock)
    with caplog.at_level(logging.WARNING, logger="visionpack.license"):
        assert gate.check().days_left == 3
        clock.now += 61
        gate.check()
        clock.now += 86400
        assert gate.check().days_left == 2
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 2 and all("expires in" in w.getMessage() for w in warnings)


def test_expiry_is_noticed_without_waiting_for_the_interval(env, issue):
    clock = FakeClock()
    atomic_write(env["path"], issue(now=clock.now - 30 * 86400 + 30, days=30))  # 30 s left
    gate = make_gate(env, clock)
    gate.check()
    clock.now += 31
    assert reason_of(gate) == "expired"


def test_missing_file_and_snapshot(env, issue):
    gate = make_gate(env, FakeClock())
    assert reason_of(gate) == "missing"
    snap = gate.snapshot()
    assert snap["licensed"] is False and snap["reason"] == "missing" and snap["license"] is None
    atomic_write(env["path"], issue())
    snap = gate.snapshot()
    assert snap["licensed"] is True and snap["days_left"] in (29, 30) and snap["license"]["binding"] == "machine"


def test_clock_set_back_while_running(env, issue):
    clock = FakeClock()
    atomic_write(env["path"], issue())
    gate = make_gate(env, clock)
    gate.check()
    clock.now += 2 * 86400
    gate.check()  # the mark advances with time
    clock.now -= 86400  # someone winds the clock back a day
    assert reason_of(gate) == "clock-rollback"


def test_clock_rollback_survives_a_restart(env, issue):
    atomic_write(env["path"], issue())
    clock = FakeClock()
    make_gate(env, clock).check()
    clock.now += 10 * 86400
    make_gate(env, clock).check()
    clock.now -= 5 * 86400
    assert reason_of(make_gate(env, clock)) == "clock-rollback"  # a new process sees the old mark


def test_scope_reasons(env, issue):
    atomic_write(env["path"], issue(deploys="shop", services="face"))
    assert reason_of(make_gate(env, FakeClock(), deploy="other", service="face")) == "deploy-not-licensed"
    assert reason_of(make_gate(env, FakeClock(), deploy="shop", service="keypoint")) == "service-not-licensed"
    assert make_gate(env, FakeClock(), deploy="shop", service="face").check()


def test_bad_signature_through_the_gate(env, issue, other_keypair):
    atomic_write(env["path"], issue(key=other_keypair))
    assert reason_of(make_gate(env, FakeClock())) == "unknown-key"
    atomic_write(env["path"], b"garbage")
    assert reason_of(make_gate(env, FakeClock())) == "malformed"


def test_for_service_reads_the_service_config(tmp_path, issue, keypair):
    from types import SimpleNamespace

    from visionpack.licensing.clock import DEFAULT_STATE_DIR

    lic_dir = tmp_path / "licenses"
    lic_dir.mkdir()
    for pub in keypair[1].iterdir():
        (lic_dir / pub.name).write_bytes(pub.read_bytes())
    atomic_write(lic_dir / "license.lic", issue(services="face"))
    gate = LicenseGate.for_service(SimpleNamespace(license_dir=str(lic_dir), deploy="d", service="face"))
    assert gate.license_path == lic_dir / "license.lic" and gate.keys_dir == lic_dir
    assert gate._mark.state_dir == DEFAULT_STATE_DIR
    assert gate.check().services == ("face",)
    gate = LicenseGate.for_service(SimpleNamespace(license_dir=str(lic_dir), deploy="d", service="keypoint"))
    assert reason_of(gate) == "service-not-licensed"
