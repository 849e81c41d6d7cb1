"""Process-wide glibc malloc setting for workers whose models run on ONNX Runtime or OpenVINO.

glibc gives each thread that meets a locked arena an arena of its own (up to 8 per core); a worker's
request threads, the runtime's pool and the batcher each touched one, about 50 MiB of RSS that
requests never needed. Two arenas measured 203-212 MiB per ONNX Runtime worker instead of
253-258 MiB, with the same requests/s within the noise (benchmarks/README.md, "Inference
backends"). Paddle's own malloc tuning is paddle_engine.tune_malloc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_ARENA_MAX = -8  # malloc.h
ARENAS = 2


@functools.cache
def limit_arenas(enabled: bool = True) -> bool:
    """At most :data:`ARENAS` malloc arenas from now on; True when applied. Once per process
    (cached); a no-op off glibc. ``enabled`` is the deploy's ``malloc_tuning`` (config.py)."""
    if not enabled:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, ARENAS))
