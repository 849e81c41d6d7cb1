"""installer/tune.py: backend: auto settled at install: the fastest backend that loaded and agreed, never
one that failed or disagreed, each refusal said in the install log, the choice written into the release."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionpack import config
from visionpack.installer import tune


def ok(p50, diff=1e-7):
    return {"ok": True, "p50_ms": p50, "p95_ms": p50 * 1.2, "max_abs_diff": diff, "cosine": 1.0}


DISAGREES = {"ok": False, "why": "disagrees with Paddle: max abs diff 0.019 (tolerance 0.0001)", "p50_ms": 1.0}
RESULTS = {
    "paddle": {"backend": "paddle", "models": {"classifier": ok(12.0, 0.0), "detector": ok(30.0, 0.0)}},
    # the fastest on the classifier, but its answers differ: never chosen
    "openvino": {"backend": "openvino", "models": {"classifier": DISAGREES, "detector": ok(20.0)}},
    # its process died (a runtime that does not even import)
    "onnxruntime": {"why": "its process failed (exit -11): Segmentation fault"},
}


def test_the_fastest_backend_that_agrees_is_chosen_never_one_that_failed_or_disagreed():
    chosen = tune.choose(RESULTS, ["classifier", "detector"])
    assert chosen["classifier"]["backend"] == "paddle"  # openvino was faster but disagreed
    assert chosen["detector"]["backend"] == "openvino"
    assert chosen["classifier"]["candidates"]["onnxruntime"] == {"ok": False, "why": RESULTS["onnxruntime"]["why"]}


def test_a_role_no_backend_passed_for_gets_no_record():
    results = {"paddle": {"models": {"classifier": {"ok": False, "why": "no parity record"}}}}
    assert tune.choose(results, ["classifier"]) == {}


def test_the_log_says_the_choice_and_why_each_other_backend_was_not_chosen():
    chosen = tune.choose(RESULTS, ["classifier"])
    lines = tune.describe("classifier", chosen["classifier"], chosen["classifier"]["candidates"])
    assert lines[0] == "tune classifier: paddle"
    assert "  paddle: p50 12.00 ms, max abs diff 0 (chosen)" in lines
    assert any(line.startswith("  openvino: not chosen: disagrees with Paddle: max abs diff 0.019") for line in lines)
    assert "  onnxruntime: not chosen: its process failed (exit -11): Segmentation fault" in lines
    none = tune.describe("x", None, {"paddle": {"ok": False, "why": "no parity record"}})
    assert none[0] == "tune x: no backend passed; the bundle's own format runs it"


def test_only_auto_roles_are_measured():
    cfg = config.from_mapping({"models": {"a": "/m/a", "b": "/m/b"}, "model_backends": {"b": "paddle"}})
    assert tune.wanted(cfg) == ["a"]
    assert tune.wanted(config.from_mapping({"models": {"a": "/m/a"}, "backend": "openvino"})) == []


def bundle_dir(path: Path, *names: str) -> str:
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_bytes(b"x")
    return str(path)


def release_with(tmp_path: Path, **values) -> tuple[Path, config.ServiceConfig]:
    both = ("inference.json", "inference.pdiparams", "inference.yml", "inference.onnx", "parity.npz")
    models = {"classifier": bundle_dir(tmp_path / "c", *both), "detector": bundle_dir(tmp_path / "d", *both)}
    cfg = config.from_mapping({"models": models, **values})
    (tmp_path / "config.yml").write_text(config.dump(cfg))
    return tmp_path, cfg


def test_tune_release_measures_each_backend_and_writes_the_choice_into_the_release(tmp_path, monkeypatch):
    release, cfg = release_with(tmp_path)
    asked = []

    def measured(venv, rel, kind, timeout=tune.CHILD_TIMEOUT):
        asked.append(kind)
        return RESULTS[kind]

    monkeypatch.setattr(tune, "measure_backend", measured)
    said: list[str] = []
    new = tune.tune_release(Path("/venv"), release, cfg, said.append)
    assert sorted(asked) == ["onnxruntime", "openvino", "paddle"]
    assert {r: rec["backend"] for r, rec in new.tuning.items()} == {"classifier": "paddle", "detector": "openvino"}
    on_disk = config.load(release / "config.yml", env={})
    assert on_disk.tuning == new.tuning and on_disk.models == cfg.models
    assert "tune detector: openvino" in said


def test_a_configured_backend_is_not_measured(tmp_path, monkeypatch):
    release, cfg = release_with(tmp_path, backend="paddle")
    monkeypatch.setattr(tune, "measure_backend", lambda *a, **k: pytest.fail("measured a configured backend"))
    said: list[str] = []
    assert tune.tune_release(Path("/venv"), release, cfg, said.append) is cfg
    assert said == ["tune: backend paddle is configured; nothing to measure"]


def test_a_bundle_without_an_onnx_rendition_or_a_parity_record_is_not_measured(tmp_path, monkeypatch):
    models = {
        "a": bundle_dir(tmp_path / "a", "inference.json", "inference.pdiparams", "inference.yml"),
        "b": bundle_dir(tmp_path / "b", "inference.json", "inference.pdiparams", "inference.yml", "inference.onnx"),
    }
    cfg = config.from_mapping({"models": models})
    monkeypatch.setattr(tune, "measure_backend", lambda *a, **k: pytest.fail("nothing to choose between"))
    said: list[str] = []
    assert tune.tune(Path("/venv"), tmp_path, cfg, said.append) == {}
    assert said == [
        "tune a: no ONNX rendition: it runs on paddle",
        "tune b: no parity.npz to check the other backends against: it runs on its own format",
    ]


def test_a_runtime_that_cannot_start_is_an_answer_not_a_failed_install(tmp_path):
    result = tune.measure_backend(tmp_path / "no-venv", tmp_path, "openvino")
    assert result["why"].startswith("cannot run ")


def test_a_model_stays_on_the_deploys_common_runtime_when_it_is_nearly_as_fast():
    results = {
        "paddle": {"models": {"pnet": ok(10.0), "feature": ok(50.0)}},
        "onnxruntime": {"models": {"pnet": ok(10.5), "feature": ok(30.0)}},  # pnet 5 % slower than paddle
        "openvino": {"models": {"pnet": ok(20.0), "feature": DISAGREES}},
    }
    chosen = tune.choose(results, ["pnet", "feature"])
    assert {r: rec["backend"] for r, rec in chosen.items()} == {"pnet": "onnxruntime", "feature": "onnxruntime"}
    assert chosen["pnet"]["note"].startswith("onnxruntime is within 10% or 0.5 ms of the fastest (paddle)")
    assert tune.describe("pnet", chosen["pnet"], chosen["pnet"]["candidates"])[0].startswith(
        "tune pnet: onnxruntime (onnxruntime is within 10% or 0.5 ms of the fastest (paddle)"
    )
    # beyond both margins the model keeps its own fastest
    results["onnxruntime"]["models"]["pnet"] = ok(12.0)
    assert tune.choose(results, ["pnet", "feature"])["pnet"]["backend"] == "paddle"
    # a sub-millisecond model: 40 % slower but only 0.2 ms
    results["paddle"]["models"]["pnet"], results["onnxruntime"]["models"]["pnet"] = ok(0.5), ok(0.7)
    assert tune.choose(results, ["pnet", "feature"])["pnet"]["backend"] == "onnxruntime"
    assert tune.common_backend({}) is None
