"""The OpenVINO engine (engine kind ``openvino``): the only module of visionpack that imports ``openvino``.

OpenVINO reads the bundle's ONNX rendition directly. Its precision is always pinned: on CPUs with
AVX512_BF16 it picks bf16 by itself, which changes answers (docs/backends.md), so f32 unless the
deploy asks for bf16. ``openvino_streams`` infer requests run in parallel (OpenVINO's CPU streams,
its one source of extra throughput measured here): the engine says so by ``concurrency`` and the
factory's lock admits that many runs at once.
"""

from __future__ import annotations

import functools
import queue
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle
from ..config import ServiceConfig
from ..errors import ConfigInvalid, ModelInvalid
from . import formats, memory

PRECISION_HINT = {"f32": "f32", "bf16": "bf16"}


@functools.cache
def _core() -> Any:
    import openvino as ov  # type: ignore[import-untyped]  # ships no py.typed marker (2026.4)

    return ov.Core()


class OpenVinoEngine:
    """One compiled model and ``streams`` infer requests; feeds by input name, outputs in graph order."""

    def __init__(
        self, model_file: str | Path, *, threads: int = 1, streams: int = 1, precision: str = "f32", device: str = "cpu"
    ) -> None:
        if device != "cpu":
            # OpenVINO's GPU plugin drives Intel GPUs only; the CUDA path is ONNX Runtime's.
            raise ConfigInvalid(f"backend openvino runs on the CPU only; device {device} needs backend onnxruntime")
        core = _core()
        config = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINT[precision],
            # The deploy's threads per worker, shared by the streams (never more CPU than Paddle got).
            "INFERENCE_NUM_THREADS": max(1, threads),
            "NUM_STREAMS": max(1, streams),
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        }
        try:
            compiled = core.compile_model(core.read_model(str(model_file)), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError and its own types
            raise ModelInvalid(f"OpenVINO cannot load {model_file}: {exc}") from exc
        self._compiled = compiled
        # The Parameter node's name is the ONNX input's; a port's "any name" may be a tensor alias
        # the graph gained on compiling (e.g. "auto.cast.0" for a detector's "image").
        self.input_names: list[str] = [port.get_node().get_friendly_name() for port in compiled.inputs]
        self.output_names: list[str] = [port.get_any_name() for port in compiled.outputs]
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(max(1, streams)):
            self._requests.put(compiled.create_infer_request())
        self.concurrency = max(1, streams)
        self.threads = threads
        self.device = device
        self.backend = "openvino"
        # What OpenVINO will really run (a CPU without bf16 runs f32 whatever was asked).
        self.precision = str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def run(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ModelInvalid(f"model expects inputs {sorted(missing)} that were not provided")
        request = self._requests.get()
        try:
            request.infer({i: np.ascontiguousarray(feeds[n]) for i, n in enumerate(self.input_names)})
            # copy: the request's output buffers are reused by its next run
            return [np.array(request.get_output_tensor(i).data, copy=True) for i in range(len(self.output_names))]
        finally:
            self._requests.put(request)


def create(bundle: Bundle, cfg: ServiceConfig) -> OpenVinoEngine:
    """The engine factory's entry (inference/engine.py)."""
    memory.limit_arenas(cfg.malloc_tuning)
    return OpenVinoEngine(
        formats.model_file(bundle, "openvino"),
        threads=cfg.effective_threads(),
        streams=cfg.openvino_streams,
        precision=cfg.precision,
        device=cfg.device,
    )
