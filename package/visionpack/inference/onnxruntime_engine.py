"""The ONNX Runtime engine (engine kind ``onnxruntime``): the only module of visionpack that imports ``onnxruntime``.

It runs a bundle's ONNX rendition (``inference.onnx``, or an ONNX-only bundle's ``*.onnx``) with
the deploy's threads; on ``device: gpu:N`` the execution providers come from inference/devices.py.
Sessions are thread-safe, but the factory (inference/engine.py) still serialises runs: one run
at a time keeps the per-worker CPU use the deploy's threads promise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..config import ServiceConfig
from ..errors import ModelInvalid
from . import devices, formats, memory


class OnnxRuntimeEngine:
    """One ``InferenceSession``: feeds by input name, outputs in graph order."""

    def __init__(self, model_file: str | Path, *, threads: int = 1, device: str = "cpu") -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]  # ships no py.typed/stubs (1.32)

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
        # Spinning pool threads burn a core between requests (the KMP_BLOCKTIME lesson, paddle_engine.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # GPU selection (providers, CUDA's libraries) is inference/devices.py's; cpu: the CPU provider.
        providers = devices.ort_providers(device, ort.get_available_providers())
        devices.prepare_gpu(ort, device)
        try:
            self._session = ort.InferenceSession(str(model_file), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelInvalid(f"ONNX Runtime cannot load {model_file}: {exc}") from exc
        # ORT falls back to the CPU silently when CUDA's libraries are missing: refuse that.
        devices.check_session(device, self._session.get_providers())
        self.input_names: list[str] = [i.name for i in self._session.get_inputs()]
        self.output_names: list[str] = [o.name for o in self._session.get_outputs()]
        self.threads = threads
        self.device = device
        self.backend = "onnxruntime"
        self.precision = "f32"

    def run(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ModelInvalid(f"model expects inputs {sorted(missing)} that were not provided")
        inputs = {n: np.ascontiguousarray(feeds[n]) for n in self.input_names}
        return list(self._session.run(None, inputs))


def create(bundle: Bundle, cfg: ServiceConfig) -> OnnxRuntimeEngine:
    """The engine factory's entry (inference/engine.py)."""
    memory.limit_arenas(cfg.malloc_tuning)
    return OnnxRuntimeEngine(
        formats.model_file(bundle, "onnxruntime"), threads=cfg.effective_threads(), device=cfg.device
    )
