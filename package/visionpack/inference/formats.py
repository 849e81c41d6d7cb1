"""Which model format each backend runs, and the bundle's file for it (the contract in docs/backends.md).

paddle runs the Paddle graph; onnxruntime and openvino run the ONNX rendition (OpenVINO reads
ONNX directly). bundle.py's ``Bundle.formats`` says what a bundle holds.
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import ONNX, PADDLE, Bundle
from ..errors import ModelInvalid

FORMAT_OF = {"paddle": PADDLE, "onnxruntime": ONNX, "openvino": ONNX}


def runnable(bundle: Bundle) -> list[str]:
    """The backends that can run this bundle (its formats), in FORMAT_OF's order."""
    held = bundle.formats
    return [kind for kind, fmt in FORMAT_OF.items() if fmt in held]


def why_not(bundle: Bundle, kind: str) -> str | None:
    """Why backend ``kind`` cannot run this bundle (the format it lacks), None when it can."""
    fmt = FORMAT_OF.get(kind)
    if fmt is None or fmt in bundle.formats:
        return None
    held = ", ".join(sorted(bundle.formats)) or "no model"
    unavailable = bundle.onnx_info.get("unavailable") if fmt == ONNX else None
    return f"backend {kind} runs the {fmt} format; bundle {bundle.name} holds {held}" + (
        f" (no ONNX rendition: {unavailable})" if unavailable else ""
    )


def model_file(bundle: Bundle, kind: str) -> Path:
    """The bundle's file that backend ``kind`` runs; ModelInvalid saying why when it has none."""
    why = why_not(bundle, kind)
    if why:
        raise ModelInvalid(why + ": choose another backend")
    return bundle.formats[FORMAT_OF[kind]]
