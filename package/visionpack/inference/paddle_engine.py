"""The Paddle Inference engine (engine kind ``paddle``): the only module of visionpack that imports ``paddle``.

A :class:`PaddleEngine` wraps one Paddle Inference predictor. It must be created after
gunicorn forks, never in the master. Predictors are not thread-safe: every run goes through
one dedicated thread, and the factory (inference/engine.py) adds the lock every engine gets.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..config import ServiceConfig, export_env
from ..errors import GpuUnavailable, ModelInvalid

_init_lock = threading.Lock()

# glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20


@functools.cache
def tune_malloc(enabled: bool = True) -> bool:
    """Keep Paddle's per-run buffers in the heap instead of fresh mmaps; True when applied.

    Paddle and oneDNN allocate and free their intermediate tensors (hundreds of KB to MBs) on
    every run. With glibc's defaults those become mmap/munmap pairs or trimmed heap tops, so
    each run page-faults the same memory back in: measured 600-1200 minor faults per
    EfficientNet-Lite0 inference, and 28 % less CPU per inference (10.8 -> 7.8 ms) once both
    thresholds are raised (benchmarks/README.md, "malloc"). Setting only one is worse than
    neither: an explicit trim threshold also switches off glibc's adaptive mmap threshold.
    Process-wide, so applied once (cached); a no-op off glibc (musl, macOS). ``enabled`` is the
    deploy's ``malloc_tuning`` (config.py; VISIONPACK_MALLOC_TUNING=0 turns it off).
    """
    if not enabled:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _device_id(device: str) -> int:
    _, _, idx = device.partition(":")
    return int(idx or 0)


class PaddleEngine:
    """Feeds inputs by *name* (never by position) and returns outputs in graph order."""

    def __init__(
        self,
        model_file: str | Path,
        params_file: str | Path,
        *,
        threads: int = 1,
        onednn: bool = False,
        onednn_cache_capacity: int = 10,
        device: str = "cpu",
        malloc_tuning: bool = True,
    ) -> None:
        # Quiet glog before paddle initialises; it prints per-pass lines otherwise.
        export_env({"GLOG_minloglevel": "2"}, keep_existing=True)
        # How long Intel OpenMP's pool threads spin after a parallel region. The default 200 ms
        # burned a core between requests (doubling CPU per request); 0 put them to sleep
        # between the ~50 operators of one inference, so every operator paid a wake-up and a
        # second thread made the predictor slower, not faster (7.8 vs 7.1 ms). 1 ms spans the
        # gaps inside an inference and sleeps between requests: 2 threads 4.75 ms, 1-worker
        # service p50 11.2 -> 8.5 ms, same CPU per request (benchmarks/README.md, findings 1
        # and 11). Must be set before paddle is imported; an operator's own value wins.
        export_env({"KMP_BLOCKTIME": "1"}, keep_existing=True)
        if not device.startswith("gpu"):
            tune_malloc(malloc_tuning)
            # Paddle's executor frees every intermediate tensor after its last use, from a
            # garbage-collector thread: ~50 context switches per EfficientNet-Lite0 run and the
            # same buffers allocated again on the next run. Keeping them (as a fixed-shape
            # service wants) cut CPU per inference 8.7 -> 7.1 ms for +11 MiB RSS
            # (benchmarks/README.md, finding 10). Read when paddle is imported; an operator's
            # own value wins.
            export_env({"FLAGS_eager_delete_tensor_gb": "-1"}, keep_existing=True)
        with _init_lock:
            from paddle import inference

            if device.startswith("gpu") and not _has_cuda():
                # The CPU wheel would only warn and run on the CPU: a GPU deploy must not silently do that.
                raise GpuUnavailable(
                    f"device {device}: this Paddle has no CUDA (the CPU build); use backend onnxruntime"
                )
            config = inference.Config(str(model_file), str(params_file))
            if device.startswith("gpu"):
                config.enable_use_gpu(256, _device_id(device))
            else:
                config.disable_gpu()
                if onednn:
                    config.enable_mkldnn()
                    # Variable input shapes (detectors, pyramids) would otherwise grow the
                    # oneDNN primitive cache without bound (PaddleOCR #701).
                    config.set_mkldnn_cache_capacity(onednn_cache_capacity)
                else:
                    config.disable_mkldnn()
                config.set_cpu_math_library_num_threads(max(1, threads))
            if str(model_file).endswith(".json"):
                config.enable_new_ir(True)
            config.enable_new_executor()
            config.enable_memory_optim()
            config.disable_glog_info()
            try:
                self._predictor = inference.create_predictor(config)
            except Exception as exc:  # paddle raises many types; report them as one
                raise ModelInvalid(f"Paddle cannot load {model_file}: {exc}") from exc
        self.input_names: list[str] = list(self._predictor.get_input_names())
        self.output_names: list[str] = list(self._predictor.get_output_names())
        self._inputs = {n: self._predictor.get_input_handle(n) for n in self.input_names}
        self._outputs = [self._predictor.get_output_handle(n) for n in self.output_names]
        self.threads = threads
        self.onednn = onednn
        self.device = device
        self.backend = "paddle"
        self.precision = "f32"
        # Paddle keeps per-thread caches; running it on whichever of gunicorn's HTTP threads got
        # the request built one copy per thread (~400 MB more RSS per worker). One dedicated
        # thread runs every inference of this engine; callers still serialise (engine.py's lock).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paddle-run")

    def run(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        return self._pool.submit(self._run, feeds).result()

    def _run(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ModelInvalid(f"model expects inputs {sorted(missing)} that were not provided")
        for name in self.input_names:
            arr = np.ascontiguousarray(feeds[name])
            handle = self._inputs[name]
            handle.reshape(arr.shape)
            handle.copy_from_cpu(arr)
        self._predictor.run()
        return [h.copy_to_cpu() for h in self._outputs]


def create(bundle: Bundle, cfg: ServiceConfig) -> PaddleEngine:
    """The engine factory's entry (inference/engine.py): the bundle's predictor with the deploy's settings."""
    onednn = bundle.onednn_default if cfg.onednn is None else cfg.onednn
    # An Ultralytics export holding both formats names its ONNX file as model_file (the one served by
    # default); Paddle must get the export's own graph (services/pose/yolo_export.py ExportBundle.paddle),
    # or it crashes reading the ONNX file as a program.
    model_file = getattr(bundle, "paddle", None) or bundle.model_file
    return PaddleEngine(
        model_file,
        bundle.params_file,
        threads=cfg.effective_threads(),
        onednn=onednn,
        onednn_cache_capacity=cfg.onednn_cache_capacity,
        device=cfg.device,
        malloc_tuning=cfg.malloc_tuning,
    )


def _has_cuda() -> bool:
    import paddle

    return bool(paddle.is_compiled_with_cuda())  # type: ignore[attr-defined]  # re-exported implicitly


def paddle_version() -> str:
    import paddle

    return str(paddle.__version__)  # type: ignore[attr-defined]  # paddle re-exports it implicitly
