"""config.py's backend keys (issue 16): backend, model_backends, precision, openvino_streams, tuning, device."""

from __future__ import annotations

import pytest

from visionpack import config
from visionpack.errors import ConfigInvalid


def test_defaults_are_auto_f32_one_stream_on_the_cpu_and_stay_out_of_the_file():
    cfg = config.from_mapping({})
    assert (cfg.backend, cfg.precision, cfg.openvino_streams, cfg.device) == ("auto", "f32", 1, "cpu")
    text = config.dump(cfg)
    for key in ("backend", "precision", "openvino_streams", "model_backends", "tuning"):
        assert f"{key}:" not in text  # an older release's config reader never meets them


def test_a_chosen_backend_and_the_measurements_round_trip_through_the_file(tmp_path):
    tuning = {"classifier": {"backend": "openvino", "candidates": {"openvino": {"ok": True, "p50_ms": 3.0}}}}
    cfg = config.from_mapping(
        {"backend": "auto", "model_backends": {"detector": "paddle"}, "openvino_streams": 2, "tuning": tuning}
    )
    path = tmp_path / "config.yml"
    path.write_text(config.dump(cfg))
    again = config.load(path, env={})
    assert again.tuning == tuning and again.model_backends == {"detector": "paddle"} and again.openvino_streams == 2


def test_the_environment_forces_a_backend_for_every_model(tmp_path):
    assert config.load(None, env={"VISIONPACK_BACKEND": "onnxruntime"}).backend == "onnxruntime"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "tensorrt"}, "backend must be one of auto, paddle, onnxruntime, openvino"),
        ({"model_backends": {"classifier": "tf"}}, "model_backends.classifier must be one of"),
        ({"model_backends": ["paddle"]}, "'model_backends' must map role names"),
        ({"precision": "fp16"}, "precision must be one of f32, bf16"),
        ({"precision": "bf16", "backend": "onnxruntime"}, "precision bf16 is an OpenVINO setting"),
        ({"openvino_streams": 0}, "'openvino_streams' must be at least 1"),
        ({"tuning": {"classifier": {"backend": "auto"}}}, "tuning.classifier.backend must be one of"),
        ({"tuning": {"classifier": "paddle"}}, "'tuning' must map role names to measurement records"),
        ({"device": "cuda:0"}, "device must be 'cpu' or 'gpu:N'"),
        ({"device": "gpu:x"}, "device must be 'cpu' or 'gpu:N'"),
        ({"device": "gpu:-1"}, "device must be 'cpu' or 'gpu:N'"),
    ],
)
def test_bad_backend_settings_are_refused_naming_the_key(values, message):
    with pytest.raises(ConfigInvalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.from_mapping(values)


@pytest.mark.parametrize(
    ("given", "normal"), [("gpu", "gpu:0"), ("GPU:1", "gpu:1"), ("gpu:07", "gpu:7"), ("CPU", "cpu")]
)
def test_devices_are_normalised(given, normal):
    assert config.from_mapping({"device": given}).device == normal


def test_bf16_is_accepted_where_openvino_may_run():
    assert config.from_mapping({"precision": "bf16"}).precision == "bf16"  # auto may pick openvino
    assert config.from_mapping({"precision": "bf16", "backend": "paddle", "model_backends": {"x": "openvino"}})


def test_a_model_may_set_its_own_engine_settings_over_the_deploys():
    cfg = config.from_mapping(
        {
            "threads_per_worker": 2,
            "model_options": {"feature": {"threads_per_worker": "1", "precision": "bf16", "openvino_streams": 2}},
        }
    )
    own = config.for_model(cfg, "feature")
    assert (own.threads_per_worker, own.precision, own.openvino_streams) == (1, "bf16", 2)
    assert config.for_model(cfg, "detector") is cfg and config.for_model(cfg, None) is cfg
    assert "model_options" in config.dump(cfg)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"feature": {"backend": "paddle"}}, "unknown key(s) backend in model_options.feature"),
        ({"feature": "fast"}, "'model_options' must map role names to engine settings"),
        ({"feature": {"threads_per_worker": "many"}}, "'threads_per_worker' must be an integer"),
        ({"feature": {"threads_per_worker": -1}}, "model_options.feature: 'threads_per_worker' must be 0"),
        ({"feature": {"openvino_streams": 0}}, "model_options.feature: 'openvino_streams' must be at least 1"),
        ({"feature": {"precision": "fp8"}}, "model_options.feature: precision must be one of f32, bf16"),
    ],
)
def test_bad_model_settings_are_refused_naming_the_model(options, message):
    with pytest.raises(ConfigInvalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.from_mapping({"model_options": options})
