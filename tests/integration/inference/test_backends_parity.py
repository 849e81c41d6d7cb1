"""Every demo bundle on every backend, real runtimes: ONNX Runtime and OpenVINO (f32) agree with Paddle
on the bundle's own parity record, and OpenVINO runs at the precision it was told (never bf16 by itself)."""

from __future__ import annotations

import pytest

from tests.paths import REPO
from visionpack import config
from visionpack.bundle import load_bundle
from visionpack.inference import autotune
from visionpack.inference.engine import create_engine

BUNDLES = sorted(p.name for p in (REPO / "models").iterdir() if (p / "inference.yml").is_file())
BACKENDS = ("paddle", "onnxruntime", "openvino")


def test_every_demo_bundle_has_an_onnx_rendition_and_a_parity_record():
    assert len(BUNDLES) >= 7
    for name in BUNDLES:
        b = load_bundle(REPO / "models" / name)
        assert "onnx" in b.formats and b.parity is not None, name


@pytest.mark.parametrize("name", BUNDLES)
def test_each_backend_agrees_with_paddle_on_the_bundles_record(name):
    bundle = load_bundle(REPO / "models" / name)
    cfg = config.from_mapping({"threads_per_worker": 1, "models": {"m": str(bundle.path)}})
    tol = bundle.parity_tolerance
    for kind in BACKENDS:
        got = autotune.measure_model(bundle, cfg, kind, timed=False)
        assert got["ok"], (kind, got)
        assert got["max_abs_diff"] <= tol["max_abs_diff"] and got["cosine"] >= tol["cosine_min"], (kind, got)
        assert got["precision"] == "f32", (kind, got)


def test_openvino_runs_f32_unless_bf16_is_asked_and_says_what_it_runs():
    bundle = load_bundle(REPO / "models" / "mtcnn_rnet")
    f32 = create_engine(bundle, config.from_mapping({"backend": "openvino"}))
    assert f32.backend == "openvino" and f32.precision == "f32"
    bf16 = create_engine(bundle, config.from_mapping({"backend": "openvino", "precision": "bf16"}))
    # bf16 where the CPU has it; a CPU without it runs f32 and the engine says so
    assert bf16.precision in ("bf16", "f32")


def test_openvino_streams_run_requests_in_parallel_with_the_same_answers():
    bundle = load_bundle(REPO / "models" / "mtcnn_onet")
    inputs, want = autotune.parity_record(bundle)
    engine = create_engine(bundle, config.from_mapping({"backend": "openvino", "openvino_streams": 2}))
    assert engine.engine.concurrency == 2
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: engine.run(inputs), range(8)))
    for out in outs:
        assert autotune.agreement([*out], want)["max_abs_diff"] < 1e-4


def test_a_gpu_device_is_refused_by_the_cpu_builds_instead_of_running_on_the_cpu():
    from visionpack.errors import ConfigInvalid, GpuUnavailable

    bundle = load_bundle(REPO / "models" / "mtcnn_rnet")
    with pytest.raises(GpuUnavailable, match="this Paddle has no CUDA"):
        create_engine(bundle, config.from_mapping({"backend": "paddle", "device": "gpu:0"}))
    with pytest.raises(ConfigInvalid, match="backend openvino runs on the CPU only"):
        create_engine(bundle, config.from_mapping({"backend": "openvino", "device": "gpu:0"}))
    with pytest.raises(GpuUnavailable):  # the CPU onnxruntime has no CUDA provider (inference/devices.py)
        create_engine(bundle, config.from_mapping({"backend": "onnxruntime", "device": "gpu:0"}))
