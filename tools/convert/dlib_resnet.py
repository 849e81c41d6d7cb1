"""dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1.dat) -> Paddle bundle.

Source: the ``face-recognition-models`` 0.3.0 sdist (its LICENSE is CC0 1.0; its README says
the models "were created by Davis King ... and are licensed in the public domain or under CC0
1.0 Universal").  Only this one file of the sdist is used (the 68-point landmark model in the
same archive is trained on iBUG 300-W data with non-commercial terms upstream).

The network type is dlib's ``anet_type`` from ``examples/dnn_face_recognition_ex.cpp`` /
``tools/python/src/face_recognition.cpp`` (the file does not record tags/skips, so it is
spelled here as dlib's C++ spells it).  The bundle keeps the raw 128-d descriptor as the graph
output; PaddleX's ``NormalizeFeatures`` L2-normalises it in Python.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.convert import dlib_format as df

BUNDLE_NAME = "dlib_resnet_face"
TOOL = "tools/convert/dlib_resnet.py"
TOOL_VERSION = "1"  # bump when the produced bundle would change for the same inputs
PACKAGE = "face-recognition-models"
VERSION = "0.3.0"
ARCHIVE = f"face_recognition_models-{VERSION}.tar.gz"
MEMBER = f"face_recognition_models-{VERSION}/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
LICENSE = "CC0-1.0"
LICENSE_SOURCE = (
    f"{ARCHIVE}: LICENSE (CC0 1.0 Universal text) and README.rst ('licensed in the public "
    "domain or under CC0 1.0 Universal'); the sdist's PKG-INFO says 'MIT license' for the "
    "package wrapper itself"
)
SOURCES = [ARCHIVE]
INPUT_SIZE = 150
CHIP_PADDING = 0.25  # dlib face_recognition_model_v1.compute_face_descriptor default padding
# PaddleX has no dlib model; MobileFaceNet is PaddleX's 128-d face feature model and shares
# its predictor contract (ResizeImage/NormalizeImage/ToCHWImage + NormalizeFeatures).
PADDLEX_MODEL_NAME = "MobileFaceNet"

# --- dlib's 5-point chip template (dlib/image_transforms/interpolation.h,
# get_face_chip_details): shape_predictor_5 parts in the unit face square ----------------
DLIB_5PT = {
    "eye_a_outer": (0.8595674595992, 0.2134981538014),  # part 0 (image-right eye)
    "eye_a_inner": (0.6460604764104, 0.2289674387677),  # part 1
    "eye_b_outer": (0.1205750620789, 0.2137274526848),  # part 2 (image-left eye)
    "eye_b_inner": (0.3340850613712, 0.2290642403242),  # part 3
    "nose_base": (0.4901123135679, 0.6277975316475),  # part 4 (68-pt #33 is the same point)
}
# Same function, 68-point mean face (index i-17): nose tip #30 and mouth corners #48, #54.
DLIB_68PT = {"nose_tip": (0.490127, 0.515625), "mouth_left": (0.254149, 0.780233), "mouth_right": (0.726104, 0.780233)}


def alignment_template(size: int = INPUT_SIZE, padding: float = CHIP_PADDING) -> list[list[float]]:
    """MTCNN-ordered 5 points (left eye, right eye, nose, left mouth, right mouth; left = smaller
    x in the image) in chip pixels, as get_face_chip_details maps unit-square points:
    ``(padding + p) / (2 * padding + 1) * size``.  Eye centres are the midpoints of dlib's eye
    corners; nose tip and mouth corners come from dlib's 68-point mean face (same frame: its
    #33 equals the 5-point nose base)."""

    def mid(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)

    unit = [
        mid(DLIB_5PT["eye_b_outer"], DLIB_5PT["eye_b_inner"]),
        mid(DLIB_5PT["eye_a_outer"], DLIB_5PT["eye_a_inner"]),
        DLIB_68PT["nose_tip"],
        DLIB_68PT["mouth_left"],
        DLIB_68PT["mouth_right"],
    ]
    return [
        [round((padding + x) / (2 * padding + 1) * size, 4), round((padding + y) / (2 * padding + 1) * size, 4)]
        for x, y in unit
    ]


def dlib_5pt_chip_points(size: int = INPUT_SIZE, padding: float = CHIP_PADDING) -> list[list[float]]:
    """dlib's own 5 template points (parts 0..4) in chip pixels, for dlib 5-point landmarks."""
    return [
        [(padding + x) / (2 * padding + 1) * size, (padding + y) / (2 * padding + 1) * size]
        for x, y in DLIB_5PT.values()
    ]


# --- dlib's network type, top (under the loss) to bottom --------------------------------

CON = ("con_4", "con_5")
AFFINE = ("affine_", "affine_2", "bn_con2")


def _L(*expect: str) -> df.Node:
    return df.Node("layer", expect)


def _block(n: int, stride: int) -> list[df.Node]:
    # block<N,BN,stride,S> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,S>>>>>; N and
    # stride are not needed to read the file (they are stored), only the nesting is
    return [_L(*AFFINE), _L(*CON), _L("relu_"), _L(*AFFINE), _L(*CON)]


def _ares(n: int) -> list[df.Node]:
    # relu<add_prev1<block<N,affine,1,tag1<S>>>>
    return [_L("relu_"), _L("add_prev_")] + _block(n, 1) + [df.Node("tag", n=1)]


def _ares_down(n: int) -> list[df.Node]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<S>>>>>>>
    return (
        [_L("relu_"), _L("add_prev_"), _L("avg_pool_2"), df.Node("skip", n=1), df.Node("tag", n=2)]
        + _block(n, 2)
        + [df.Node("tag", n=1)]
    )


def network_spec() -> list[df.Node]:
    """anet_type = loss_metric<fc_no_bias<128,avg_pool_everything<alevel0<alevel1<alevel2<
    alevel3<alevel4<max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>>>>>"""
    nodes = [_L("fc_2", "fc_3"), _L("avg_pool_2")]
    nodes += _ares_down(256)  # alevel0
    nodes += _ares(256) + _ares(256) + _ares_down(256)  # alevel1
    nodes += _ares(128) + _ares(128) + _ares_down(128)  # alevel2
    nodes += _ares(64) + _ares(64) + _ares(64) + _ares_down(64)  # alevel3
    nodes += _ares(32) + _ares(32) + _ares(32)  # alevel4
    nodes += [_L("max_pool_2"), _L("relu_"), _L(*AFFINE), _L(*CON), df.Node("input", ("input_rgb_image_sized",))]
    # add_prev1 / add_prev2 carry the tag id in the type only; fill it from the structure
    for i, node in enumerate(nodes):
        if node.expect == ("add_prev_",):
            node.n = 2 if nodes[i + 1].expect == ("avg_pool_2",) and nodes[i + 2].op == "skip" else 1
    return nodes


@dataclass
class ParsedModel:
    loss: df.Layer
    input: df.Layer
    ops: list[tuple[str, int, df.Layer | None]]  # bottom-up: (op, tag id, layer)


def parse_model(data: bytes) -> ParsedModel:
    loss, nodes = df.parse_network(data, network_spec(), loss=("loss_metric_", "loss_metric_2"))
    if loss is None or nodes[-1].layer is None:
        raise df.DlibFormatError("no loss or input layer parsed")
    ops = [(n.op, n.n, n.layer) for n in reversed(nodes[:-1])]
    return ParsedModel(loss, nodes[-1].layer, ops)


def read_source(archive: str | Path) -> bytes:
    """The .dat straight out of the sdist (tar.gz); it is near the front of the archive."""
    path = Path(archive)
    with tarfile.open(path, "r:gz") as tf:
        member = tf.getmember(MEMBER)
        fh = tf.extractfile(member)
        if fh is None:
            raise df.DlibFormatError(f"{MEMBER} in {path} is not a regular file")
        return fh.read()


# --- the Paddle network ------------------------------------------------------------------


def _plan(model: ParsedModel, in_shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    """Turn dlib ops into a static plan with shapes, folding each conv-mode affine into the
    convolution right under it (exact algebra: W*g, b*g+beta)."""
    plan: list[dict[str, Any]] = []
    shape = in_shape
    tags: dict[int, tuple[int, int, int]] = {}
    for op, n, layer in model.ops:
        if op == "tag":
            plan.append({"op": "tag", "n": n})
            tags[n] = shape
            continue
        if op == "skip":
            plan.append({"op": "skip", "n": n})
            shape = tags[n]
            continue
        assert layer is not None
        k = layer.kind
        if k == "con":
            a, f = layer.attrs, layer.tensors["filters"]
            if f.shape[1] != shape[0]:
                raise df.DlibFormatError(f"conv expects {f.shape[1]} channels, gets {shape[0]}")
            b = layer.tensors.get("biases", np.zeros(f.shape[0], np.float32))
            plan.append(
                {
                    "op": "conv",
                    "w": f.copy(),
                    "b": b.copy(),
                    "stride": (a["stride_y"], a["stride_x"]),
                    "pad": (a["padding_y"], a["padding_x"]),
                }
            )
            oh = 1 + (shape[1] + 2 * a["padding_y"] - a["nr"]) // a["stride_y"]
            ow = 1 + (shape[2] + 2 * a["padding_x"] - a["nc"]) // a["stride_x"]
            shape = (f.shape[0], oh, ow)
        elif k == "affine":
            if layer.attrs["disabled"]:
                continue
            g, bt = layer.tensors["gamma"], layer.tensors["beta"]
            if layer.attrs["mode"] != "conv":
                raise df.DlibFormatError("fc-mode affine is not used by this network")
            g, bt = g.reshape(-1), bt.reshape(-1)
            if plan and plan[-1]["op"] == "conv":
                plan[-1]["w"] = plan[-1]["w"] * g[:, None, None, None]
                plan[-1]["b"] = plan[-1]["b"] * g + bt
            else:
                plan.append({"op": "affine", "g": g, "b": bt})
        elif k == "relu":
            plan.append({"op": "relu"})
        elif k in ("max_pool", "avg_pool"):
            a = layer.attrs
            if a["nr"] == 0 and a["nc"] == 0:
                plan.append({"op": "global_avg" if k == "avg_pool" else "global_max"})
                shape = (shape[0], 1, 1)
                continue
            if k == "avg_pool" and (a["padding_y"] or a["padding_x"]):
                raise df.DlibFormatError("padded avg_pool is not supported")
            plan.append(
                {
                    "op": k,
                    "kernel": (a["nr"], a["nc"]),
                    "stride": (a["stride_y"], a["stride_x"]),
                    "pad": (a["padding_y"], a["padding_x"]),
                }
            )
            shape = (
                shape[0],
                1 + (shape[1] + 2 * a["padding_y"] - a["nr"]) // a["stride_y"],
                1 + (shape[2] + 2 * a["padding_x"] - a["nc"]) // a["stride_x"],
            )
        elif k == "add_prev":
            other = tags[n]
            # dlib add_prev_: output has the max of each dim; missing elements count as 0
            out = tuple(max(s, o) for s, o in zip(shape, other))
            plan.append(
                {
                    "op": "add_prev",
                    "n": n,
                    "pad_self": tuple(o - s for o, s in zip(out, shape)),
                    "pad_other": tuple(o - s for o, s in zip(out, other)),
                }
            )
            shape = out
        elif k == "fc":
            w = layer.tensors["weights"]
            if w.shape[0] != int(np.prod(shape)):
                raise df.DlibFormatError(f"fc expects {w.shape[0]} inputs, gets {shape}")
            plan.append({"op": "fc", "w": w, "b": layer.tensors.get("biases")})
            shape = (w.shape[1], 1, 1)
        else:
            raise df.DlibFormatError(f"no Paddle mapping for dlib layer {k}")
    return plan


def build_paddle_net(model: ParsedModel) -> Any:
    import paddle
    import paddle.nn.functional as F

    class DlibResNet(paddle.nn.Layer):
        def __init__(self, plan: list[dict[str, Any]]) -> None:
            super().__init__()
            self.plan = plan
            self.mods = paddle.nn.LayerList()
            self.kinds: list[str] = []
            for step in plan:
                op = step["op"]
                if op == "conv":
                    w = step["w"]
                    conv = paddle.nn.Conv2D(
                        w.shape[1], w.shape[0], (w.shape[2], w.shape[3]), stride=step["stride"], padding=step["pad"]
                    )
                    conv.weight.set_value(w.astype(np.float32))
                    conv.bias.set_value(step["b"].astype(np.float32))
                    step["mod"] = len(self.mods)
                    self.mods.append(conv)
                elif op == "fc":
                    w = step["w"]
                    lin = paddle.nn.Linear(w.shape[0], w.shape[1], bias_attr=step["b"] is not None)
                    lin.weight.set_value(w.astype(np.float32))  # paddle Linear weight is [in, out] like dlib
                    if step["b"] is not None:
                        lin.bias.set_value(step["b"].astype(np.float32))
                    step["mod"] = len(self.mods)
                    self.mods.append(lin)
                elif op == "affine":
                    g = self.create_parameter([1, len(step["g"]), 1, 1])
                    g.set_value(step["g"].reshape(1, -1, 1, 1).astype(np.float32))
                    b = self.create_parameter([1, len(step["b"]), 1, 1])
                    b.set_value(step["b"].reshape(1, -1, 1, 1).astype(np.float32))
                    step["params"] = (g, b)
                    self.add_parameter(f"affine_g_{len(self.kinds)}", g)
                    self.add_parameter(f"affine_b_{len(self.kinds)}", b)
                self.kinds.append(op)

        def forward(self, x):  # noqa: ANN001 - paddle tensor
            tags = {}
            for step in self.plan:
                op = step["op"]
                if op == "conv":
                    x = self.mods[step["mod"]](x)
                elif op == "affine":
                    g, b = step["params"]
                    x = x * g + b
                elif op == "relu":
                    x = F.relu(x)
                elif op == "max_pool":
                    x = F.max_pool2d(x, step["kernel"], step["stride"], step["pad"])
                elif op == "avg_pool":
                    x = F.avg_pool2d(x, step["kernel"], step["stride"], 0)
                elif op == "global_avg":
                    x = paddle.mean(x, axis=[2, 3], keepdim=True)
                elif op == "global_max":
                    x = paddle.amax(x, axis=[2, 3], keepdim=True)
                elif op == "tag":
                    tags[step["n"]] = x
                elif op == "skip":
                    x = tags[step["n"]]
                elif op == "add_prev":
                    y = tags[step["n"]]
                    x = _pad_chw(x, step["pad_self"]) + _pad_chw(y, step["pad_other"])
                elif op == "fc":
                    x = self.mods[step["mod"]](paddle.flatten(x, 1))
            return x

    def _zeros_after(t, axis: int, n: int):  # noqa: ANN001, ANN202
        # zero-extend ``t`` by n along ``axis`` with concat, not F.pad: Paddle 3.3.1's oneDNN pad
        # kernel aborts (channel pad) or hangs (spatial pad) on this graph
        if n <= 0:
            return t
        size = t.shape[axis]
        parts = [t]
        while n > 0:
            k = min(n, size)
            parts.append(paddle.zeros_like(paddle.slice(t, [axis], [0], [k])))
            n -= k
        return paddle.concat(parts, axis=axis)

    def _pad_chw(t, pad):  # noqa: ANN001, ANN202
        for axis, n in zip((1, 2, 3), pad):
            t = _zeros_after(t, axis, n)
        return t

    c = 3
    plan = _plan(model, (c, model.input.attrs["nr"], model.input.attrs["nc"]))
    return DlibResNet(plan)


def preprocess_spec(model: ParsedModel) -> dict[str, Any]:
    """PaddleX NormalizeImage equivalent of dlib's to_tensor: (pixel - avg) / 256, RGB order."""
    avg = [float(np.float32(v)) for v in model.input.attrs["avg_rgb"]]
    div = float(model.input.attrs["divisor"])
    return {"scale": 1.0, "mean": avg, "std": [div, div, div], "order": "hwc"}


def normalize_chip(chip_rgb: np.ndarray, model_pre: dict[str, Any]) -> np.ndarray:
    """Reference of what the yml's transform_ops do to a 150x150 RGB uint8 chip -> NCHW float32."""
    x = (
        chip_rgb.astype(np.float32) * np.float32(model_pre["scale"]) - np.asarray(model_pre["mean"], np.float32)
    ) / np.asarray(model_pre["std"], np.float32)
    return x.transpose(2, 0, 1)[None].copy()


def inference_yml(model: ParsedModel) -> dict[str, Any]:
    size = [int(model.input.attrs["nc"]), int(model.input.attrs["nr"])]
    return {
        "Global": {"model_name": PADDLEX_MODEL_NAME},
        "PreProcess": {
            "transform_ops": [
                {"ResizeImage": {"size": size}},
                {"NormalizeImage": preprocess_spec(model)},
                {"ToCHWImage": None},
            ]
        },
        "PostProcess": {"NormalizeFeatures": None},
    }


_YML_HEADER = (
    "# dlib_face_recognition_resnet_model_v1 (dlib ResNet, 128-d descriptor)"
    " converted by tools/convert/dlib_resnet.py\n"
    "# Global.model_name: PaddleX has no dlib model; MobileFaceNet is its 128-d face feature model and\n"
    "# shares this predictor contract (ResizeImage/NormalizeImage/ToCHWImage + NormalizeFeatures).\n"
    "# NormalizeImage = dlib input_rgb_image_sized::to_tensor: (pixel - avg_rgb) / 256 on RGB.\n"
    "# Input: an aligned RGB chip (manifest.json 'alignment'); the graph outputs the raw descriptor.\n"
)


def check_export(out_dir: Path, net: Any, size: tuple[int, int], log: Callable[[str], None]) -> dict[str, Any]:
    """The exported graph must reproduce the network under Paddle Inference (oneDNN off); oneDNN
    is recorded as usable only if it also runs and matches (bundle_writer.check_exported_model)."""
    import paddle

    from tools.convert import bundle_writer as bw

    probe = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2, 3, *size)).astype(np.float32)
    with paddle.no_grad():
        ref = net(paddle.to_tensor(probe)).numpy()
    check = bw.check_exported_model(out_dir, {"x": probe}, ref, atol=1e-4)
    log(f"  export max|diff| = {check['max_abs_diff']:.2e}; oneDNN: {check['onednn_detail']}")
    if not check["ok"]:
        raise RuntimeError(f"exported model differs from the network: max|diff|={check['max_abs_diff']}")
    return check


def build(
    sources: Mapping[str, Path], out_dir: Path, build_info: Mapping[str, Any], log: Callable[[str], None] = print
) -> None:
    """Write the complete bundle into ``out_dir`` (build_models.py's scratch dir)."""
    import paddle

    from tools.convert import bundle_writer as bw

    t0 = time.monotonic()
    archive = Path(sources[ARCHIVE])
    log(f"reading {MEMBER} from {archive.name}")
    data = read_source(archive)
    model = parse_model(data)
    log(f"  parsed {sum(1 for op, _, _ in model.ops if op == 'layer')} dlib layers, loss {model.loss.attrs}")
    paddle.set_device("cpu")
    net = build_paddle_net(model)
    size = (int(model.input.attrs["nr"]), int(model.input.attrs["nc"]))
    log("exporting Paddle inference model (PIR)")
    bw.save_inference_model(net, [paddle.static.InputSpec([None, 3, *size], "float32", "x")], out_dir)
    check = check_export(out_dir, net, size, log)
    write_yml_with_header(out_dir, inference_yml(model), _YML_HEADER)
    bw.write_manifest(
        out_dir,
        name=BUNDLE_NAME,
        task="face_feature",
        paddlex_model_name=PADDLEX_MODEL_NAME,
        source={
            "package": PACKAGE,
            "version": VERSION,
            "license": LICENSE,
            "license_source": LICENSE_SOURCE,
            "archive": ARCHIVE,
            "file": MEMBER,
            "sha256": hashlib.sha256(data).hexdigest(),
            "architecture": "dlib anet_type: ResNet with 29 conv layers (14 residual adds, 4 downsampling), "
            "150x150 RGB -> fc_no_bias 128, loss_metric",
        },
        runtime={
            "onednn": bool(check["onednn"]),
            "onednn_detail": check["onednn_detail"],
            "input_size": [size[1], size[0]],
            "color": "RGB",
            "feature_dim": 128,
            "output": "raw descriptor (PostProcess NormalizeFeatures L2-normalises it)",
        },
        build={**build_info, "seconds": round(time.monotonic() - t0, 1)},
        metrics={
            "export_max_abs_diff": check["max_abs_diff"],
            "onednn_max_abs_diff": check["onednn_max_abs_diff"],
            "dlib_same_person_threshold": {"euclidean_raw": 0.6, "note": "loss_metric dist_thresh stored in the .dat"},
        },
    )
    add_to_manifest(
        out_dir,
        {
            "alignment": {
                "size": [size[1], size[0]],
                "padding": CHIP_PADDING,
                "points": alignment_template(size[0], CHIP_PADDING),
                "order": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
                "transform": "similarity (rotation, uniform scale, translation) from the 5 detected landmarks onto "
                "these chip pixel coordinates (integer = pixel centre), bilinear warp",
                "source": "dlib/image_transforms/interpolation.h get_face_chip_details (size 150, padding 0.25 as "
                "dlib's compute_face_descriptor); eyes = midpoints of its 5-point eye corners, nose tip "
                "and mouth corners = its 68-point mean face #30, #48, #54",
                "dlib_5pt": {
                    "points": [[round(v, 4) for v in p] for p in dlib_5pt_chip_points(size[0])],
                    "order": ["eye_right_outer", "eye_right_inner", "eye_left_outer", "eye_left_inner", "nose_base"],
                },
            },
            "dlib": {
                "loss": model.loss.kind,
                **model.loss.attrs,
                "input_avg_rgb": [float(v) for v in model.input.attrs["avg_rgb"]],
            },
        },
    )
    log(f"wrote bundle files: {sorted(p.name for p in out_dir.iterdir())}")


def write_yml_with_header(out_dir: Path, mapping: Mapping[str, Any], header: str) -> Path:
    """write_yaml, then prefix comments (comments are free for PaddleX's YAML loader)."""
    from tools.convert.bundle_writer import write_yaml

    path = write_yaml(out_dir, mapping)
    path.write_text(header + path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def add_to_manifest(out_dir: Path, extra: Mapping[str, Any]) -> None:
    """Add top-level keys to manifest.json (its file hashes exclude the manifest itself)."""
    path = Path(out_dir) / "manifest.json"
    man = json.loads(path.read_text(encoding="utf-8"))
    man.update(extra)
    path.write_text(json.dumps(man, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
