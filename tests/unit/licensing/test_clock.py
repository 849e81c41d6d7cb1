"""Clock high-water mark: rollback, tampering, repair and conservative rebuild."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from visionpack.errors import LicenseError
from visionpack.licensing.clock import MARK_NAMES, WRITE_STEP, ClockMark

NOW = int(time.time())


def rollback(mark: ClockMark, now: float, **kw) -> LicenseError:
    with pytest.raises(LicenseError) as exc:
        mark.check(now, **kw)
    assert exc.value.reason == "clock-rollback"
    return exc.value


def test_first_check_writes_both_copies(tmp_path):
    mark = ClockMark(tmp_path)
    assert mark.check(NOW) == NOW
    for name in MARK_NAMES:
        doc = json.loads((tmp_path / name).read_text())
        assert doc["high"] == NOW and len(doc["mac"]) == 64
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640  # the service's group reads; others nothing
    assert ClockMark(tmp_path).read() == (NOW, ["ok", "ok"])


def test_forward_advances_backward_within_drift_is_fine(tmp_path):
    mark = ClockMark(tmp_path)
    mark.check(NOW)
    assert mark.check(NOW + 3600) == NOW + 3600
    assert ClockMark(tmp_path).read()[0] == NOW + 3600
    assert mark.check(NOW + 3600 - 299) == NOW + 3600  # NTP stepping back a little is not tampering


def test_small_steps_do_not_rewrite(tmp_path):
    mark = ClockMark(tmp_path)
    mark.check(NOW)
    before = (tmp_path / MARK_NAMES[0]).stat().st_ino
    mark.check(NOW + WRITE_STEP - 1)
    assert (tmp_path / MARK_NAMES[0]).stat().st_ino == before
    mark.check(NOW + WRITE_STEP)
    assert ClockMark(tmp_path).read()[0] == NOW + WRITE_STEP


def test_rollback_detected(tmp_path):
    ClockMark(tmp_path).check(NOW)
    err = rollback(ClockMark(tmp_path), NOW - 3600)
    assert "behind" in err.detail
    # Nothing was lowered by the refused check.
    assert ClockMark(tmp_path).read()[0] == NOW


def test_edited_mark_is_tampering(tmp_path):
    ClockMark(tmp_path).check(NOW)
    for name in MARK_NAMES:
        doc = json.loads((tmp_path / name).read_text())
        doc["high"] = NOW - 86400 * 30  # try to move the mark back a month
        (tmp_path / name).write_text(json.dumps(doc))
    err = rollback(ClockMark(tmp_path), NOW - 86400 * 30)
    assert "altered" in err.detail


@pytest.mark.parametrize("garbage", [b"", b"{", b"[]", b'{"v":1,"high":"1","mac":"x"}', b"\xff" * 10])
def test_garbage_mark_is_tampering(tmp_path, garbage):
    for name in MARK_NAMES:
        (tmp_path / name).write_bytes(garbage)
    rollback(ClockMark(tmp_path), NOW)


def test_one_bad_copy_is_repaired(tmp_path, caplog):
    ClockMark(tmp_path).check(NOW)
    (tmp_path / MARK_NAMES[1]).write_text("junk")
    with caplog.at_level(logging.WARNING, logger="visionpack.license"):
        assert ClockMark(tmp_path).check(NOW + 1) == NOW + 1
    assert ClockMark(tmp_path).read()[1] == ["ok", "ok"]
    assert any("repairing" in r.getMessage() for r in caplog.records)
    # The surviving copy still enforces the mark.
    (tmp_path / MARK_NAMES[0]).unlink()
    rollback(ClockMark(tmp_path), NOW - 3600)


def test_deleted_marks_rebuilt_from_license_issue_time(tmp_path):
    mark = ClockMark(tmp_path)
    rollback(mark, NOW - 3600, floor=NOW)  # floor = the license's signed issued_at
    assert mark.check(NOW, floor=NOW - 100) == NOW


def test_deleted_marks_rebuilt_from_witness_ctime(tmp_path):
    """Deleting the marks after winding the clock back: the license file's ctime remembers."""
    witness = tmp_path / "license.lic"
    witness.write_text("x")
    os.utime(witness, (0, 0))  # touch can fake mtime, not ctime
    state = tmp_path / "state"
    err = rollback(ClockMark(state), time.time() - 86400, witnesses=[witness])
    assert "behind" in err.detail
    assert ClockMark(state).check(time.time(), witnesses=[witness, tmp_path / "absent"])


def test_mark_from_another_machine_does_not_verify(tmp_path):
    mark = ClockMark(tmp_path)
    mark._secret = b"another machine's secret".ljust(32, b"\0")
    mark.check(NOW)
    rollback(ClockMark(tmp_path), NOW)


def test_unwritable_state_dir_warns_once(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    mark = ClockMark(blocker / "state")  # a path under a regular file can never be created
    with caplog.at_level(logging.WARNING, logger="visionpack.license"):
        mark.check(NOW)
        mark.check(NOW + WRITE_STEP * 2)
    assert sum("cannot write clock mark" in r.getMessage() for r in caplog.records) == 1


def test_new_state_dir_is_the_service_groups_and_sticky(tmp_path):
    ClockMark(tmp_path / "var" / "state").check(NOW)
    assert (tmp_path / "var" / "state").stat().st_mode & 0o7777 == 0o3770  # nothing for others


def test_root_writes_marks_as_the_owner_of_the_state_dir(tmp_path):
    """The installer (root) checking the clock leaves marks the service user can replace."""
    if os.geteuid() != 0:
        pytest.fail("the tests run as root (CI and the dev machines do)")
    state = tmp_path / "state"
    state.mkdir(mode=0o3770)
    os.chown(state, 10001, 10001)
    ClockMark(state).check(NOW)
    for name in MARK_NAMES:
        st = (state / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (10001, 10001, 0o640)
