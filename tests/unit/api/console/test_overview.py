"""What the overview says about a deploy: kept releases from state.json (read, never written),
license facts as /ready reports them, models and their backends (its running workers, with real
processes: tests/integration/api/console/test_overview.py)."""

from __future__ import annotations

import json

import pytest

from tests.unit.api.console.console_fakes import cls_config
from visionpack.api.console import overview
from visionpack.api.console.overview import license_facts, model_rows, releases
from visionpack.errors import LicenseError


def state_file(tmp_path, doc) -> str:
    root = tmp_path / "root"
    (root / "demo-classify").mkdir(parents=True)
    path = root / "demo-classify" / "state.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(root)


def test_kept_releases_newest_first_with_current_and_previous(tmp_path):
    doc = {
        "schema": 2,
        "release": "1.1.0",
        "runtime_kind": "docker",
        "releases": {
            "1.0.0": {"installed_at": "2025-01-01T00:00:00Z", "activated_at": "2025-01-01T00:00:00Z"},
            "1.1.0": {"installed_at": "2025-02-01T00:00:00Z"},
            "0.9.0": {"installed_at": "2024-12-01T00:00:00Z"},
        },
        "history": [{"release": "0.9.0"}, {"release": "1.0.0"}, {"release": "1.1.0"}],
    }
    root = state_file(tmp_path, doc)
    before = (tmp_path / "root" / "demo-classify" / "state.json").read_bytes()
    r = releases(cls_config(tmp_path, root=root, release="1.1.0"))
    assert [(x.version, x.current, x.previous) for x in r.rows] == [
        ("1.1.0", True, False),
        ("1.0.0", False, True),
        ("0.9.0", False, False),
    ]
    assert r.rows[1].installed_at == "2025-01-01T00:00:00Z" and r.runtime == "docker" and r.note == ""
    assert (tmp_path / "root" / "demo-classify" / "state.json").read_bytes() == before  # read only


def test_a_schema_1_state_is_read_as_the_installer_reads_it(tmp_path):
    root = state_file(
        tmp_path,
        {
            "schema": 1,
            "release": "2.0",
            "runtime": "process",
            "releases": {"2.0": {"runtime": "abc", "installed_at": "x"}},
        },
    )
    r = releases(cls_config(tmp_path, root=root, release="2.0"))
    assert r.runtime == "process" and [x.version for x in r.rows] == ["2.0"]
    assert (
        json.loads((tmp_path / "root" / "demo-classify" / "state.json").read_text())["schema"] == 1
    )  # not migrated on disk


def test_the_current_release_is_listed_even_when_the_journal_lacks_it(tmp_path):
    root = state_file(tmp_path, {"release": "3.0", "releases": {}})
    assert [x.version for x in releases(cls_config(tmp_path, root=root, release="3.0")).rows] == ["3.0"]


def test_a_worker_of_another_release_says_so(tmp_path):
    root = state_file(tmp_path, {"release": "2.0", "releases": {"1.0": {}, "2.0": {}}})
    r = releases(cls_config(tmp_path, root=root, release="1.0"))
    assert "this worker runs 1.0; state.json names 2.0" in r.note


@pytest.mark.parametrize(
    "doc, note",
    [
        ("{half", "is not valid"),
        ("[1, 2]", "is not valid"),
    ],
)
def test_a_broken_state_falls_back_to_the_config(tmp_path, doc, note):
    r = releases(cls_config(tmp_path, root=state_file(tmp_path, doc), release="1.0.0"))
    assert [(x.version, x.current) for x in r.rows] == [("1.0.0", True)] and note in r.note


def test_an_unreadable_state_falls_back_to_the_config(tmp_path):
    root = tmp_path / "root"
    (root / "demo-classify" / "state.json").mkdir(parents=True)  # unreadable as a file, even by root
    r = releases(cls_config(tmp_path, root=str(root), release="1.0.0"))
    assert r.rows[0].version == "1.0.0" and "cannot be read by the service" in r.note
    r = releases(cls_config(tmp_path, root=str(tmp_path / "nowhere"), release="1.0.0"))
    assert "cannot be read by the service" in r.note


def test_without_an_install_root(tmp_path):
    r = releases(cls_config(tmp_path, release=""))
    assert r.rows[0].version == "?" and "no install root" in r.note


def test_license_facts():
    assert license_facts({}, gated=False).state == "none"
    bad = license_facts({"license": {"ok": False, "reason": "expired", "detail": "expired on 2025-01-01"}}, gated=True)
    assert (bad.state, bad.reason, bad.warnings) == ("invalid", "expired", ("expired on 2025-01-01",))
    lic = {
        "license_id": "vp-1",
        "customer": "ACME",
        "days_left": 12,
        "expires_at": "2026-01-01T00:00:00Z",
        "instances": 4,
        "warnings": ["expires in 12 days"],
    }
    good = license_facts({"license": lic}, gated=True, in_use=lambda: 3)
    assert (good.state, good.customer, good.days_left, good.licensed, good.in_use, good.warnings) == (
        "valid",
        "ACME",
        12,
        4,
        3,
        ("expires in 12 days",),
    )


def test_instances_in_use_is_none_when_the_slots_cannot_be_read(monkeypatch):
    from visionpack.licensing import instances

    monkeypatch.setattr(instances, "count", lambda: (_ for _ in ()).throw(LicenseError("instance-limit", "no dir")))
    assert overview.instances_in_use() is None
    monkeypatch.setattr(instances, "count", lambda: 2)
    assert overview.instances_in_use() == 2


def test_models_with_their_backend(tmp_path):
    cfg = cls_config(tmp_path)
    (row,) = model_rows(cfg.models)
    assert (row.role, row.bundle, row.model, row.task, row.backend, row.note) == (
        "classifier",
        "fake_cls",
        "PP-LCNet_x1_0",
        "image_classification",
        "paddle",
        "",
    )
    (chosen,) = model_rows(cfg.models, {"classifier": {"backend": "openvino"}})
    assert chosen.backend == "openvino"  # what this worker runs (the measured or configured choice)
    (broken,) = model_rows({"detector": str(tmp_path / "gone")})
    assert (broken.bundle, broken.backend) == ("gone", "?") and "not a directory" in broken.note


def test_an_ultralytics_export_is_described_not_reported_broken(tmp_path):
    """A YOLOv8-pose deploy's model is `yolo export`'s output, read as the keypoint service reads it."""
    from tests.yolo_onnx import metadata, pose_table, write_onnx

    export = write_onnx(tmp_path / "my_pose" / "my-pose.onnx", pose_table([], 84), metadata()).parent
    (row,) = model_rows({"pose": str(export)})
    assert (row.role, row.bundle, row.model, row.task, row.backend, row.note) == (
        "pose",
        "my_pose",
        "my-pose",
        "pose",
        "onnxruntime",
        "",
    )
