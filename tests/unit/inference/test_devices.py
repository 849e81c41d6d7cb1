"""device: cpu | gpu:N, and the ONNX Runtime execution providers for it (no GPU needed: the runtime's
answers are passed in, as onnxruntime_engine.py passes them)."""

from __future__ import annotations

import pytest

from visionpack import config
from visionpack.errors import ConfigInvalid, GpuUnavailable
from visionpack.inference import devices
from visionpack.inference.devices import Device, check_session, ort_providers, parse_device

CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]  # the onnxruntime (CPU) wheel
GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]  # onnxruntime-gpu 1.26


@pytest.mark.parametrize(
    ("text", "want"),
    [("cpu", Device("cpu")), (" CPU ", Device("cpu")), ("gpu:0", Device("gpu", 0)), ("gpu:3", Device("gpu", 3))],
)
def test_parse(text, want):
    assert parse_device(text) == want
    assert str(want) in ("cpu", f"gpu:{want.index}")


def test_a_bare_gpu_is_the_first_gpu():
    assert parse_device("gpu") == Device("gpu", 0) and str(parse_device("GPU")) == "gpu:0"


@pytest.mark.parametrize("text", ["", "cuda", "gpu:", "gpu:-1", "gpu:1.5", "gpu:0,1", "gpu:1000", "cpu:0", "npu:0"])
def test_anything_else_is_refused_with_the_accepted_forms(text):
    with pytest.raises(ConfigInvalid) as exc:
        parse_device(text)
    assert "'cpu' or 'gpu:N'" in exc.value.detail


def test_cpu_runs_on_the_cpu_provider_only_whatever_is_installed():
    assert ort_providers("cpu", CPU_ONLY) == ["CPUExecutionProvider"]
    assert ort_providers("cpu", GPU_BUILD) == ["CPUExecutionProvider"]


def test_gpu_n_is_cuda_on_that_gpu_then_the_cpu_for_what_cuda_lacks():
    assert ort_providers("gpu:0", GPU_BUILD) == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    assert ort_providers("gpu:2", GPU_BUILD)[0] == ("CUDAExecutionProvider", {"device_id": 2})


def test_tensorrt_is_opt_in_and_goes_first_with_its_engine_cache():
    got = ort_providers("gpu:1", GPU_BUILD, tensorrt=True, cache_dir="/srv/data/trt")
    assert got == [
        (
            "TensorrtExecutionProvider",
            {"device_id": 1, "trt_engine_cache_enable": True, "trt_engine_cache_path": "/srv/data/trt"},
        ),
        ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider",
    ]
    assert ort_providers("gpu:1", GPU_BUILD, tensorrt=True)[0] == ("TensorrtExecutionProvider", {"device_id": 1})


def test_gpu_on_the_cpu_package_is_gpu_unavailable_with_the_fix():
    with pytest.raises(GpuUnavailable) as exc:
        ort_providers("gpu:0", CPU_ONLY)
    assert "download.sh --gpu cu12" in exc.value.detail and "CPUExecutionProvider" in exc.value.detail
    assert exc.value.exit_code == 24


def test_tensorrt_asked_of_a_runtime_without_it():
    with pytest.raises(GpuUnavailable, match="no TensorRT provider"):
        ort_providers("gpu:0", ["CUDAExecutionProvider", "CPUExecutionProvider"], tensorrt=True)


def test_a_session_that_fell_back_to_the_cpu_is_refused():
    # What onnxruntime-gpu 1.26 does here without a driver: it logs and runs on the CPU.
    with pytest.raises(GpuUnavailable) as exc:
        check_session("gpu:0", ["CPUExecutionProvider"])
    assert "could not start its CUDA provider" in exc.value.detail and "nvidia-smi -L" in exc.value.detail
    check_session("gpu:0", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    check_session("cpu", ["CPUExecutionProvider"])


class FakeOrt:
    def __init__(self) -> None:
        self.calls: list[dict[str, bool]] = []

    def preload_dlls(self, cuda: bool = True, cudnn: bool = True, msvc: bool = True) -> None:
        self.calls.append({"cuda": cuda, "cudnn": cudnn, "msvc": msvc})


def test_prepare_gpu_pins_the_gpu_order_and_loads_the_wheel_libraries(monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    seen: list[dict[str, str]] = []
    monkeypatch.setattr(config, "export_env", lambda values, **kw: seen.append(dict(values)))
    ort = FakeOrt()
    devices.prepare_gpu(ort, "cpu")
    assert ort.calls == [] and seen == []
    devices.prepare_gpu(ort, "gpu:1")
    assert ort.calls == [{"cuda": True, "cudnn": True, "msvc": False}]
    assert seen == [{"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}]
    devices.prepare_gpu(object(), "gpu:0")  # an onnxruntime without preload_dlls (older than 1.21)


def test_the_config_accepts_what_devices_accepts():
    # config.py validates the key once; devices.py parses it for the engines: both agree on the forms.
    for text in ("cpu", "gpu", "gpu:0", "gpu:7", "GPU:3"):
        assert config.from_mapping({"device": text}).device == str(parse_device(text))
    for text in ("cuda", "gpu:x", "gpu:-1", "gpu:1000"):
        with pytest.raises(ConfigInvalid):
            config.from_mapping({"device": text})
        with pytest.raises(ConfigInvalid):
            parse_device(text)
