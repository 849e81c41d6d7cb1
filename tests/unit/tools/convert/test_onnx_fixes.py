"""tools/convert/onnx_fixes.py and the batch choice of onnx_rendition.py, on stand-ins for onnx's protobuf
objects (the test venv has no onnx; the real graphs are edited in tests/integration/test_onnx_rendition.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pytest

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import (
    onnx_fixes as F,  # noqa: E402
    onnx_rendition as R,  # noqa: E402
)


@dataclass
class Attr:
    name: str
    ints: list[int]


@dataclass
class Node:
    op_type: str
    name: str
    output: list[str]
    attribute: list[Attr]


class Dim:
    """onnx's TensorShapeProto.Dimension: a oneof of dim_value and dim_param."""

    def __init__(self, value: int | None = None, param: str = "") -> None:
        self.dim_value, self.dim_param, self._has_value = value or 0, param, value is not None

    def HasField(self, name: str) -> bool:  # noqa: N802 (protobuf's spelling)
        return name == "dim_value" and self._has_value

    def ClearField(self, name: str) -> None:  # noqa: N802
        if name == "dim_param":
            self.dim_param = ""

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name == "dim_value" and value:
            super().__setattr__("_has_value", True)


@dataclass
class Value:
    name: str
    dims: list[Dim]

    @property
    def type(self) -> Value:  # value.type.tensor_type.shape.dim
        return self

    tensor_type = type
    shape = type

    @property
    def dim(self) -> list[Dim]:
        return self.dims


@dataclass
class Graph:
    node: list[Node] = field(default_factory=list)
    input: list[Value] = field(default_factory=list)


@dataclass
class Model:
    graph: Graph

    def SerializeToString(self) -> bytes:  # noqa: N802
        return b"model"


def test_split_sizes_unknown_at_export_are_dropped():
    bad = Node("Split", "Split.1", ["a", "b"], [Attr("axis", [0]), Attr("split", [0, -1])])
    fine = Node("Split", "Split.0", ["c"] * 3, [Attr("split", [1, 1, 1])])
    other = Node("Concat", "Concat.0", ["d"], [Attr("split", [0])])
    model = Model(Graph([bad, fine, other]))
    [line] = F.apply_always(model)
    assert "Split Split.1: dropped split=[0, -1]" in line and "num=2" in line
    assert [a.name for a in bad.attribute] == ["axis"]
    assert fine.attribute[0].ints == [1, 1, 1] and other.attribute[0].ints == [0]
    assert F.apply_always(model) == []  # nothing left to fix


def test_pin_batch_fixes_every_input_that_is_not_already_pinned():
    image = Value("image", [Dim(param="N"), Dim(3), Dim(320), Dim(320)])
    scale = Value("scale_factor", [Dim(param="N"), Dim(2)])
    model = Model(Graph(input=[image, scale]))
    [line] = F.pin_batch(model, 1, "NMS tail")
    assert line == "inputs image, scale_factor: batch pinned to 1 (NMS tail)"
    assert image.dims[0].HasField("dim_value") and image.dims[0].dim_value == 1 and image.dims[0].dim_param == ""
    assert F.pin_batch(model, 1, "again") == []


@pytest.fixture
def batch_model(monkeypatch):
    """A dynamic-batch model; run_paddle / run_onnxruntime return what the test sets."""
    model = Model(Graph(input=[Value("x", [Dim(param="N"), Dim(3), Dim(8), Dim(8)])]))

    def specs(m):
        return [(v.name, [d.dim_value or None for d in v.dims], "float32") for v in m.graph.input]

    monkeypatch.setattr(R, "input_specs", specs)
    runs: dict[str, object] = {"paddle": [np.ones((2, 4), np.float32)], "ort": [np.ones((2, 4), np.float32)]}

    def run(which):
        def fake(*args):
            if isinstance(runs[which], Exception):
                raise runs[which]  # type: ignore[misc]
            return runs[which]

        return fake

    monkeypatch.setattr(R.onnx_parity, "run_paddle", run("paddle"))
    monkeypatch.setattr(R.onnx_parity, "run_onnxruntime", run("ort"))
    return model, runs


TOL = {"max_abs_diff": 1e-4, "cosine_min": 0.9999}
CAT = REPO / "package" / "samples" / "cat.jpg"


def choose(model):
    return R.choose_batch(REPO, model, {}, CAT, "face_feature", TOL)


def test_a_batch_of_two_that_agrees_keeps_the_batch_dynamic(batch_model):
    model, _ = batch_model
    assert choose(model) == [] and model.graph.input[0].dims[0].dim_param == "N"


@pytest.mark.parametrize(
    "which,result,why",
    [
        ("paddle", RuntimeError("batch 1 only"), "Paddle itself does not run a batch of 2: RuntimeError: batch 1 only"),
        ("ort", RuntimeError("Concat axis 0: 2 and 1"), "batch 2 fails in ONNX Runtime: RuntimeError: Concat axis 0"),
        ("ort", [np.ones((1, 4), np.float32)], "batch 2 differs from Paddle: ValueError: output 0 has shape [1, 4]"),
        ("ort", [np.full((2, 4), 2.0, np.float32)], "batch 2 differs from Paddle: max|diff| 1"),
    ],
)
def test_a_batch_of_two_that_fails_or_differs_pins_the_batch_to_one(batch_model, which, result, why):
    model, runs = batch_model
    runs[which] = result
    [line] = choose(model)
    assert line.startswith("inputs x: batch pinned to 1 (") and why in line, line
    assert model.graph.input[0].dims[0].dim_value == 1


def test_a_fixed_batch_graph_is_not_probed(batch_model):
    model, runs = batch_model
    model.graph.input[0].dims[0] = Dim(1)
    runs["paddle"] = RuntimeError("must not run")
    assert choose(model) == []
