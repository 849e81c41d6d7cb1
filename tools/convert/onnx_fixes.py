"""Our edits of a paddle2onnx graph that make it load and agree in ONNX Runtime and OpenVINO.

Each fix is a function ``(model) -> list[str]`` that edits the ``onnx.ModelProto`` in place and returns
one line per change, saying what it changed and why; the lines go into the manifest's "onnx" record
("fixes"). Whether a fixed graph is right is not assumed here: onnx_rendition.py measures every
rendition against Paddle's own outputs before it is kept (docs/backends.md).
"""

from __future__ import annotations

from typing import Any


def drop_nonpositive_split_sizes(model: Any) -> list[str]:
    """``paddle.split`` into equal parts on a dynamic axis (the flip test: ``[x, flip(x)]`` split back
    in two) becomes, at opset <= 11, a ``Split`` whose ``split`` attribute is ``[0, -1]``: the size
    paddle2onnx could not know at export time. ONNX Runtime refuses it ("All values must be > 0"),
    OpenVINO infers a zero batch. Without the attribute, ONNX's Split cuts the axis into equal parts,
    which is what the Paddle op does there."""
    changed = []
    for node in model.graph.node:
        if node.op_type != "Split":
            continue
        for attr in list(node.attribute):
            if attr.name == "split" and any(v <= 0 for v in attr.ints):
                sizes = list(attr.ints)
                node.attribute.remove(attr)
                changed.append(
                    f"Split {node.name}: dropped split={sizes} (sizes unknown at export on a dynamic axis; "
                    f"equal parts, as paddle.split with num={len(node.output)})"
                )
    return changed


def pin_batch(model: Any, batch: int, why: str) -> list[str]:
    """Make every graph input's first dimension ``batch``: the graph only works for that batch (e.g.
    paddle2onnx's multiclass-NMS tail reshapes to ``[1, -1, 1]``), and a runtime that knows it
    plans for it instead of failing at run time on another batch."""
    names = []
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not (dims[0].HasField("dim_value") and dims[0].dim_value == batch):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
            names.append(value.name)
    if not names:
        return []
    return [f"inputs {', '.join(names)}: batch pinned to {batch} ({why})"]


# Applied to every conversion, in order; each does nothing where its problem is absent.
ALWAYS = (drop_nonpositive_split_sizes,)


def apply_always(model: Any) -> list[str]:
    out: list[str] = []
    for fix in ALWAYS:
        out += fix(model)
    return out
