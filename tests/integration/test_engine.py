"""The Paddle seam loads both export formats and feeds inputs by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from visionpack.bundle import load_bundle
from visionpack.errors import ModelInvalid
from visionpack.inference.paddle_engine import PaddleEngine as Engine

PACKAGE = Path(__file__).resolve().parents[2] / "package"

EXPORT = textwrap.dedent("""
    import sys, numpy as np, paddle
    out, legacy = sys.argv[1], sys.argv[2] == "legacy"
    paddle.seed(0)

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
            self.fc = paddle.nn.Linear(4, 5)

        def forward(self, x, bias):
            y = paddle.nn.functional.relu(self.conv(x)).mean(axis=[2, 3])
            return paddle.nn.functional.softmax(self.fc(y) + bias, axis=-1)

    net = Net()
    net.eval()
    specs = [paddle.static.InputSpec([None, 3, 16, 16], "float32", "x"),
             paddle.static.InputSpec([None, 5], "float32", "bias")]
    x = np.random.default_rng(1).random((2, 3, 16, 16), dtype=np.float32)
    b = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    ref = net(paddle.to_tensor(x), paddle.to_tensor(b)).numpy()
    np.save(out + "/ref.npy", ref); np.save(out + "/x.npy", x); np.save(out + "/b.npy", b)
    if legacy:
        # How PaddleX exporters write .pdmodel on paddle 3 (reference/paddlex.md section 1).
        with paddle.pir_utils.OldIrGuard():
            static = paddle.jit.to_static(net, input_spec=specs, full_graph=True)
            paddle.jit.save(static, out + "/inference")
    else:
        static = paddle.jit.to_static(net, input_spec=specs, full_graph=True)
        paddle.jit.save(static, out + "/inference")
    open(out + "/inference.yml", "w").write("PreProcess: {transform_ops: []}\\nPostProcess: {Topk: {topk: 1}}\\n")
""")


def export(tmp_path, fmt):
    # A separate interpreter: dygraph/static mode switches must not leak into this process.
    # The script is a file because to_static reads the layer's source code.
    script = tmp_path / "export_toy.py"
    script.write_text(EXPORT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), fmt], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp_path


@pytest.mark.parametrize("fmt,model_file", [("pir", "inference.json"), ("legacy", "inference.pdmodel")])
def test_loads_export_and_matches_dygraph(tmp_path, fmt, model_file):
    d = export(tmp_path, fmt)
    bundle = load_bundle(d)
    assert bundle.model_file.name == model_file
    eng = Engine(bundle.model_file, bundle.params_file, threads=1)
    assert sorted(eng.input_names) == ["bias", "x"]
    x, b, ref = (np.load(d / f) for f in ("x.npy", "b.npy", "ref.npy"))
    # Feed in the reverse of graph order: matching is by name, not position.
    out = eng.run({"bias": b, "x": x})[0]
    assert np.abs(out - ref).max() < 1e-5


def test_missing_input_is_a_model_error(tmp_path):
    d = export(tmp_path, "pir")
    eng = Engine(d / "inference.json", d / "inference.pdiparams")
    with pytest.raises(ModelInvalid):
        eng.run({"x": np.zeros((1, 3, 16, 16), np.float32)})


def test_json_preferred_over_pdmodel_like_paddlex(tmp_path):
    d = export(tmp_path, "pir")
    (d / "inference.pdmodel").write_bytes(b"stale")
    assert load_bundle(d).model_file.name == "inference.json"


def test_corrupt_graph_is_a_model_error(tmp_path):
    d = export(tmp_path, "pir")
    (d / "inference.json").write_text("{ not a graph")
    with pytest.raises(ModelInvalid):
        Engine(d / "inference.json", d / "inference.pdiparams")


def test_bundle_without_files_is_a_model_error(tmp_path):
    with pytest.raises(ModelInvalid):
        load_bundle(tmp_path)


KEEP_PROBE = textwrap.dedent("""
    import sys, numpy as np
    from visionpack.inference.paddle_engine import PaddleEngine as Engine
    d = sys.argv[1]
    eng = Engine(d + "/inference.json", d + "/inference.pdiparams")
    x, b, ref = (np.load(d + "/" + f) for f in ("x.npy", "b.npy", "ref.npy"))
    # Shapes change between runs: kept intermediates must be resized, not reused stale.
    for rows in (2, 1, 2, 1):
        assert np.abs(eng.run({"x": x[:rows], "bias": b[:rows]})[0] - ref[:rows]).max() < 1e-5
    import paddle
    print(paddle.get_flags(["FLAGS_eager_delete_tensor_gb"])["FLAGS_eager_delete_tensor_gb"])
""")


def test_cpu_engine_keeps_intermediates_unless_the_operator_says_otherwise(tmp_path):
    d = export(tmp_path, "pir")
    for env, flag in (({}, "-1.0"), ({"FLAGS_eager_delete_tensor_gb": "0"}, "0.0")):
        full = {k: v for k, v in os.environ.items() if k != "FLAGS_eager_delete_tensor_gb"}
        full.update(env, PYTHONPATH=str(PACKAGE))
        proc = subprocess.run(
            [sys.executable, "-c", KEEP_PROBE, str(d)], env=full, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.split()[-1] == flag
