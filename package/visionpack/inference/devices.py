"""Where inference runs: the ``device`` setting (``cpu`` | ``gpu:N``) and ONNX Runtime's execution providers for it.

Pure Python, no runtime import: inference/onnxruntime_engine.py passes in what ``onnxruntime``
reports (its available providers, a session's providers, the module itself for the DLL preload),
so this module is testable without a GPU and without onnxruntime-gpu installed.

``gpu:N`` is the N-th GPU in ``nvidia-smi``'s order (PCI bus order), the order the license's GPU
binding and envcheck use; :func:`prepare_gpu` pins CUDA to the same order
(``CUDA_DEVICE_ORDER=PCI_BUS_ID``; CUDA's own default puts the fastest GPU first), so ONNX
Runtime's ``device_id`` N is that same GPU.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import config
from ..errors import ConfigInvalid, GpuUnavailable

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
# Three digits at most: no machine has a thousand GPUs, and it keeps "gpu:99999999999" out.
_DEVICE = re.compile(r"(cpu)|gpu(?::(\d{1,3}))?")
# What CUDA reads when it initialises: GPU N is nvidia-smi's GPU N, whatever their speeds.
CUDA_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@dataclass(frozen=True)
class Device:
    """``kind`` "cpu" or "gpu"; ``index`` the GPU's nvidia-smi index (None for the CPU)."""

    kind: str
    index: int | None = None

    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"

    def __str__(self) -> str:
        return "cpu" if self.index is None else f"gpu:{self.index}"


def parse_device(text: str) -> Device:
    """``cpu``, ``gpu:N`` or a bare ``gpu`` (= ``gpu:0``), case and spaces ignored; ConfigInvalid otherwise."""
    m = _DEVICE.fullmatch(str(text).strip().lower())
    if m is None:
        raise ConfigInvalid(f"device must be 'cpu' or 'gpu:N' (N the GPU's nvidia-smi index, e.g. gpu:0), got {text!r}")
    if m.group(1):
        return Device("cpu")
    return Device("gpu", int(m.group(2) or 0))


def ort_providers(
    device: str, available: Sequence[str], *, tensorrt: bool = False, cache_dir: str | None = None
) -> list[str | tuple[str, dict[str, Any]]]:
    """The ``providers=`` list of ``onnxruntime.InferenceSession`` for ``device``.

    ``available``: ``onnxruntime.get_available_providers()``. ``cpu`` -> the CPU provider only.
    ``gpu:N`` -> CUDA on GPU N, then the CPU provider for the operators CUDA lacks; with
    ``tensorrt`` the TensorRT provider first (engines cached in ``cache_dir``: building them takes
    minutes per model). TensorRT is opt-in: onnxruntime-gpu lists it as available whether or not
    TensorRT's libraries are installed, and its Python wrapper then quietly retries without it.
    Raises GpuUnavailable when this onnxruntime has no CUDA provider (the CPU package).
    """
    dev = parse_device(device)
    if not dev.is_gpu:
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in available:
        raise GpuUnavailable(
            f"device {dev} needs ONNX Runtime's CUDA provider, but this runtime has only "
            f"{', '.join(available) or 'none'}: install the GPU package (bash download.sh --gpu cu12) "
            f"or set device: cpu"
        )
    cuda = (CUDA_PROVIDER, {"device_id": dev.index})
    if not tensorrt:
        return [cuda, CPU_PROVIDER]
    if TENSORRT_PROVIDER not in available:
        raise GpuUnavailable(f"TensorRT was asked for {dev}, but this ONNX Runtime has no TensorRT provider")
    trt: dict[str, Any] = {"device_id": dev.index}
    if cache_dir:
        trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=cache_dir)
    return [(TENSORRT_PROVIDER, trt), cuda, CPU_PROVIDER]


def check_session(device: str, session_providers: Sequence[str]) -> None:
    """After the session is made: raise GpuUnavailable if ``gpu:N`` was asked and it runs on the CPU only.

    ONNX Runtime does not fail when the CUDA provider cannot load (no driver, libcudnn or
    libcublas missing, no GPU N): it logs a warning and runs everything on the CPU, which would
    turn a GPU deploy into a slow CPU deploy that nobody notices.
    """
    dev = parse_device(device)
    if dev.is_gpu and CUDA_PROVIDER not in session_providers:
        raise GpuUnavailable(
            f"device {dev}: ONNX Runtime could not start its CUDA provider (session providers: "
            f"{', '.join(session_providers) or 'none'}); check the NVIDIA driver, that GPU {dev.index} exists "
            f"('nvidia-smi -L') and the worker's error.log for the library it could not load"
        )


def prepare_gpu(ort: Any, device: str) -> None:
    """Before the first session on ``gpu:N``: pin CUDA's GPU order (:data:`CUDA_ENV`) and load CUDA
    and cuDNN from the runtime venv's nvidia-* wheels (``ort`` is the ``onnxruntime`` module).
    Without the preload the CUDA provider looks for them on the system loader path only, where an
    offline server with just the driver has none. Nothing happens for ``cpu``."""
    if not parse_device(device).is_gpu:
        return
    config.export_env(CUDA_ENV)
    if callable(getattr(ort, "preload_dlls", None)):
        ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
