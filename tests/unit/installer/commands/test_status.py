"""status: 'all N licensed slots in use' is told apart from 'license not valid' (issue 14 item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionpack.errors import LicenseError
from visionpack.installer.commands import status as cmd
from visionpack.installer.context import Context
from visionpack.installer.layout import Root


def deploy_doc(state: str, lic: dict) -> dict:
    return {
        "deploy": "demo",
        "state": state,
        "desired": "running",
        "release": "1.0.0",
        "host": "0.0.0.0",
        "port": 8701,
        "pid": 7 if state == "running" else None,
        "worker_pids": [8] if state == "running" else [],
        "ready": True if state == "running" else None,
        "stale_pidfile": False,
        "interrupted_operation": None,
        "path": "/opt/visionpack/demo",
        "license": lic,
    }


def license_of(monkeypatch, tmp_path, *, instances: int, running: int, deploy_running: bool) -> dict:
    seen = {}

    def check(root, name, service, runtime_python, replacing=False, limit=True):
        seen["limit"] = limit
        return {
            "license_id": "L1",
            "days_left": 20,
            "expires_at": "2030-01-01",
            "warnings": [],
            "instances": instances,
            "instances_running": running,
        }

    monkeypatch.setattr(cmd, "check_license", check)
    ctx = Context(Root(tmp_path), source=None)  # type: ignore[arg-type]
    lic = cmd._license(ctx, "demo", {"service": "classification"}, running=deploy_running)
    assert seen["limit"] is False  # status never counts the slots as a license failure
    return lic


def test_running_deploy_with_every_slot_taken_is_licensed(monkeypatch, tmp_path):
    lic = license_of(monkeypatch, tmp_path, instances=4, running=4, deploy_running=True)
    assert (lic["ok"], lic["slots_full"], lic["can_start"]) == (True, True, True)
    lines = cmd.render({"root": "/r", "deploys": [deploy_doc("running", lic)]})
    assert "  license: L1, 20 days left (expires 2030-01-01)" in lines
    assert "  instances: all 4 licensed slots in use; this deploy holds one" in lines
    assert not any("NOT valid" in line for line in lines)


def test_stopped_deploy_with_every_slot_taken_cannot_start_but_is_licensed(monkeypatch, tmp_path):
    lic = license_of(monkeypatch, tmp_path, instances=4, running=5, deploy_running=False)
    assert (lic["ok"], lic["slots_full"], lic["can_start"]) == (True, True, False)
    lines = cmd.render({"root": "/r", "deploys": [deploy_doc("stopped", lic)]})
    assert (
        "  instances: all 4 licensed slots in use (5 run: started under a license with more): starting this "
        "deploy is refused (instance-limit) until another instance stops"
    ) in lines


def test_free_slots_and_unknown_count(monkeypatch, tmp_path):
    lic = license_of(monkeypatch, tmp_path, instances=4, running=1, deploy_running=True)
    assert "  instances: 1 of 4 licensed slots in use on this machine" in cmd.render(
        {"root": "/r", "deploys": [deploy_doc("running", lic)]}
    )
    lic = license_of(monkeypatch, tmp_path, instances=4, running="unknown: Permission denied", deploy_running=True)
    assert lic["slots_full"] is False
    assert "  instances: unknown: Permission denied in use of 4 licensed on this machine" in cmd.render(
        {"root": "/r", "deploys": [deploy_doc("running", lic)]}
    )


def test_an_invalid_license_still_says_not_valid(monkeypatch, tmp_path):
    def check(*a, **kw):
        raise LicenseError("expired", "license L1 expired on 2020-01-01")

    monkeypatch.setattr(cmd, "check_license", check)
    lic = cmd._license(Context(Root(tmp_path), source=None), "demo", {}, running=True)  # type: ignore[arg-type]
    assert lic == {"ok": False, "reason": "expired", "detail": "license L1 expired on 2020-01-01"}
    lines = cmd.render({"root": "/r", "deploys": [deploy_doc("running", lic)]})
    assert "  license: NOT valid (expired): license L1 expired on 2020-01-01" in lines
    assert not any(line.startswith("  instances:") for line in lines)


def test_check_in_process_reports_the_count_instead_of_refusing(monkeypatch):
    from visionpack.installer import licensecheck
    from visionpack.licensing import admin, instances

    class Verdict:
        instances = 2
        license_id = "L1"

        def to_dict(self):
            return {"license_id": "L1", "instances": 2}

    monkeypatch.setattr(admin, "check_for_start", lambda *a: Verdict())
    monkeypatch.setattr(instances, "count", lambda: 3)
    assert licensecheck.check_in_process(Path("/x"), "d", "s", limit=False) == {
        "license_id": "L1",
        "instances": 2,
        "instances_running": 3,
    }
    with pytest.raises(LicenseError) as exc:
        licensecheck.check_in_process(Path("/x"), "d", "s")  # a start over the limit is refused
    assert exc.value.reason == "instance-limit"
