"""install.py tune DEPLOY: measures again without touching a running release; --write only while stopped."""

from __future__ import annotations

import pytest

from visionpack import config
from visionpack.errors import UsageError
from visionpack.installer.commands import tune as cmd
from visionpack.installer.context import Context
from visionpack.installer.installed import Installed
from visionpack.installer.layout import Root


@pytest.fixture
def deploy(tmp_path, monkeypatch):
    root = Root(tmp_path)
    paths = root.deploy("demo")
    release = paths.release("1.0.0")
    release.mkdir(parents=True)
    recorded = {"classifier": {"backend": "openvino", "candidates": {}}}
    cfg = config.from_mapping({"models": {"classifier": "/m/c"}, "tuning": recorded})
    (release / "config.yml").write_text(config.dump(cfg))
    inst = Installed(paths, {"release": "1.0.0"})
    monkeypatch.setattr(cmd, "require", lambda ctx, name, recover=False: inst)
    monkeypatch.setattr(cmd.release, "yaml_ready", lambda source: None)
    measured = {"classifier": {"backend": "onnxruntime", "candidates": {"onnxruntime": {"ok": True, "p50_ms": 1.0}}}}
    monkeypatch.setattr(cmd.tune, "tune", lambda venv, rel, c, say: measured)
    return Context(root, source=None), release  # type: ignore[arg-type]


def state(monkeypatch, value):
    monkeypatch.setattr(cmd, "describe", lambda paths, st, probe=True: {"state": value})


def test_tune_measures_and_compares_without_writing(deploy, monkeypatch):
    ctx, release = deploy
    state(monkeypatch, "running")
    before = (release / "config.yml").read_bytes()
    doc = cmd.run(ctx, "demo")
    assert doc["recorded"] == {"classifier": "openvino"} and doc["same_choice"] == {"classifier": False}
    assert (release / "config.yml").read_bytes() == before  # a running release's choice never changes
    assert cmd.render(doc) == ["demo release 1.0.0:", "  classifier: onnxruntime (recorded: openvino)"]


def test_write_is_refused_while_the_release_runs(deploy, monkeypatch):
    ctx, release = deploy
    state(monkeypatch, "running")
    with pytest.raises(UsageError, match="a running release's backend choice never changes"):
        cmd.run(ctx, "demo", write=True)


def test_write_stores_the_new_choice_while_stopped(deploy, monkeypatch):
    ctx, release = deploy
    state(monkeypatch, "stopped")
    said: list[str] = []
    import dataclasses

    doc = cmd.run(dataclasses.replace(ctx, say=said.append), "demo", write=True)
    assert (
        doc["written"] and config.load(release / "config.yml", env={}).tuning["classifier"]["backend"] == "onnxruntime"
    )
    assert said[-1].startswith("written into ")
    assert cmd.render({**doc, "measured": {}})[-1] == "  no backend choice to make (backend configured, or none passed)"
