"""Machine-wide instance slots in a directory of the test's own: limits, owners, refusals (the
kernel freeing a dead holder's slot, racing starters, the real directory and other users:
tests/integration/licensing/test_instances.py)."""

from __future__ import annotations

import json
import os

import pytest

from visionpack.errors import LicenseError
from visionpack.licensing import instances


def test_limit_enforced_and_release_frees(tmp_path):
    a = instances.acquire(2, {"deploy": "a"}, directory=tmp_path)
    b = instances.acquire(2, {"deploy": "b"}, directory=tmp_path)
    assert (a.index, b.index) == (0, 1)
    with pytest.raises(LicenseError) as exc:
        instances.acquire(2, {"deploy": "c"}, directory=tmp_path)
    assert exc.value.reason == "instance-limit" and "2 of 2" in exc.value.detail
    assert instances.count(tmp_path) == 2
    a.release()
    a.release()  # idempotent
    with instances.acquire(2, {"deploy": "c"}, directory=tmp_path) as c:
        assert c.index == 0
        owners = {h["deploy"] for h in instances.holders(tmp_path)}
        assert owners == {"b", "c"}
    b.release()
    assert instances.count(tmp_path) == 0


def test_owner_info_recorded(tmp_path):
    with instances.acquire(1, {"deploy": "shop", "service": "face", "port": 8701}, directory=tmp_path):
        (h,) = instances.holders(tmp_path)
        assert h["slot"] == 0 and h["pid"] == os.getpid() and h["port"] == 8701 and h["since"] > 0


def test_held_slots_beyond_a_smaller_limit_still_count(tmp_path):
    slots = [instances.acquire(5, {"deploy": str(i)}, directory=tmp_path) for i in range(4)]
    slots[0].release()  # slot 0 free, 1..3 held by instances started under the old license
    with pytest.raises(LicenseError):
        instances.acquire(2, {"deploy": "new"}, directory=tmp_path)  # new license allows 2; 3 run
    for s in slots:
        s.release()


def test_unusable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LicenseError) as exc:
        instances.acquire(1, {}, directory=blocker / "instances")
    assert exc.value.reason == "instance-limit"
    assert instances.count(blocker / "instances") == 0
    json.dumps(instances.holders(tmp_path / "none"))


def test_planted_links_are_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    slots = tmp_path / "slots"
    slots.mkdir()
    (slots / "slot-0.lock").symlink_to(victim)
    with pytest.raises(LicenseError) as exc:
        instances.acquire(5, {"deploy": "x"}, directory=slots)
    assert exc.value.reason == "instance-limit"
    (slots / "slot-0.lock").unlink()
    os.link(victim, slots / "slot-0.lock")
    with pytest.raises(LicenseError) as exc:
        instances.acquire(5, {"deploy": "x"}, directory=slots)
    assert "not a plain slot file" in exc.value.detail
    assert victim.read_text() == "precious"


def test_new_directory_is_the_service_groups_and_sticky(tmp_path):
    with instances.acquire(1, {}, directory=tmp_path / "new" / "instances"):
        mode = (tmp_path / "new" / "instances").stat().st_mode & 0o7777
    assert mode == instances.DIR_MODE == 0o3770  # setgid, sticky, nothing for others
