"""MTCNN bundles against facenet-pytorch's networks run by torch on the original weights.

facenet-pytorch itself cannot be imported here (it imports torchvision), so the reference
PNet/RNet/ONet below restate its ``models/mtcnn.py`` with the same layer names, and the original
``.pt`` files load into them with ``strict=True``.  Each exported bundle runs under Paddle
Inference (as the service will: one predictor, many inputs) on real face crops, image-pyramid
levels of a real photograph and random inputs; every output must match within 1e-4.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from skimage import data as skdata
from torch import nn
from torch.nn.functional import interpolate

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.convert import (  # noqa: E402
    build_models as bm,
    bundle_writer as bw,
    mtcnn,
)

SOURCES = ROOT / "original" / "sources"
STAGES = ("pnet", "rnet", "onet")
ATOL = 1e-4


# --- reference networks (facenet_pytorch/models/mtcnn.py, same names, same forward) -------


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.softmax4_1 = nn.Conv2d(32, 2, 1), nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.softmax5_1 = nn.Linear(128, 2), nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.softmax6_1 = nn.Linear(256, 2), nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


def _wheel() -> Path:
    path = SOURCES / mtcnn.ARCHIVE
    assert path.is_file(), f"{path} missing: run download.sh (it fills original/sources from original/sources.lock)"
    return path


@pytest.fixture(scope="module")
def torch_nets() -> dict[str, nn.Module]:
    nets: dict[str, nn.Module] = {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}
    with zipfile.ZipFile(_wheel()) as zf:
        for stage, net in nets.items():
            sd = torch.load(io.BytesIO(zf.read(mtcnn.member(stage))), map_location="cpu")
            net.load_state_dict(sd, strict=True)
            net.eval()
    return nets


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build through build_models.py (the registry entries tools.convert.mtcnn.<stage>)."""
    out = tmp_path_factory.mktemp("mtcnn_models")
    with pytest.MonkeyPatch.context() as mp:
        for s in STAGES:
            mp.setitem(bm.CONVERTERS, f"mtcnn_{s}", f"tools.convert.mtcnn.{s}")
        for s in STAGES:
            assert bm.build_one(f"mtcnn_{s}", SOURCES, out, force=False, log=lambda m: None) == "built"
        for s in STAGES:  # idempotent: same inputs, intact bundle -> nothing rebuilt
            assert bm.build_one(f"mtcnn_{s}", SOURCES, out, force=False, log=lambda m: None) == "up to date"
    return out


_RUN_MANY = r"""
import sys, numpy as np, paddle.inference as pi
d, onednn, inp, outp = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
cfg = pi.Config(d + "/inference.json", d + "/inference.pdiparams")
cfg.disable_gpu()
if onednn:
    cfg.enable_mkldnn(); cfg.set_mkldnn_cache_capacity(10)
else:
    cfg.disable_mkldnn()
cfg.set_cpu_math_library_num_threads(1); cfg.enable_new_ir(True); cfg.enable_new_executor()
cfg.set_optimization_level(3); cfg.enable_memory_optim(); cfg.disable_glog_info()
pred = pi.create_predictor(cfg)
feeds = np.load(inp)
res = {}
for i in range(len(feeds.files)):
    x = np.ascontiguousarray(feeds[f"arr_{i}"])
    h = pred.get_input_handle(pred.get_input_names()[0]); h.reshape(x.shape); h.copy_from_cpu(x)
    pred.run()
    for j, n in enumerate(pred.get_output_names()):
        res[f"{i}_{j}"] = pred.get_output_handle(n).copy_to_cpu()
np.savez(outp, **res)
"""


def _paddle_many(bundle: Path, inputs: list[np.ndarray], onednn: bool, tmp: Path) -> list[list[np.ndarray]]:
    """One predictor (PaddleX's CPU config) fed every input in turn, in a child process."""
    inp, outp = tmp / f"in_{bundle.name}_{onednn}.npz", tmp / f"out_{bundle.name}_{onednn}.npz"
    np.savez(inp, *inputs)
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_MANY, str(bundle), "1" if onednn else "0", str(inp), str(outp)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(outp) as z:
        n_out = len({k.split("_")[1] for k in z.files})
        return [[z[f"{i}_{j}"] for j in range(n_out)] for i in range(len(inputs))]


def _scale(img: np.ndarray) -> np.ndarray:
    return ((img.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)[None].copy()


def _resample(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """facenet-pytorch's imresample: torch interpolate(mode='area') on the float image."""
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    return interpolate(t, size=size, mode="area")[0].permute(1, 2, 0).numpy()


FACE_BOX = (175, 76, 265, 166)  # dlib's detection on skimage astronaut (x1, y1, x2, y2)


def _inputs(stage: str) -> dict[str, np.ndarray]:
    img = skdata.astronaut()
    rng = np.random.default_rng(11)
    x1, y1, x2, y2 = FACE_BOX
    if stage == "pnet":
        h, w = img.shape[:2]
        ins = {}
        for scale in (0.6, 0.6 * 0.709**2, 0.6 * 0.709**4, 0.6 * 0.709**9):  # facenet pyramid, minsize 20
            ins[f"pyramid_{scale:.4f}"] = _scale(_resample(img, (int(h * scale + 1), int(w * scale + 1))))
        ins["random_12x12"] = rng.uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
        ins["random_13x29"] = rng.uniform(-1, 1, (2, 3, 13, 29)).astype(np.float32)
        ins["random_101x77"] = rng.uniform(-1, 1, (1, 3, 101, 77)).astype(np.float32)
        return ins
    size = mtcnn.STAGES[stage]["size"]
    crops = [img[y1:y2, x1:x2], img[y1 - 10 : y2 + 5, x1 - 8 : x2 + 12], img[0:90, 400:490], img[300:480, 100:280]]
    real = np.concatenate([_scale(_resample(c, (size, size))) for c in crops])
    return {
        "face_crops": real,
        "random": rng.uniform(-1, 1, (5, 3, size, size)).astype(np.float32),
        "single": rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32),
    }


@pytest.mark.parametrize("stage", STAGES)
def test_stage_matches_torch(stage: str, bundles: Path, torch_nets: dict[str, nn.Module], tmp_path: Path) -> None:
    bundle = bundles / f"mtcnn_{stage}"
    man = json.loads((bundle / "manifest.json").read_text())
    ins = _inputs(stage)
    with torch.no_grad():
        refs = {k: [o.numpy() for o in torch_nets[stage](torch.from_numpy(x))] for k, x in ins.items()}
    modes = [False] + ([True] if man["runtime"]["onednn"] else [])
    for onednn in modes:
        outs = _paddle_many(bundle, list(ins.values()), onednn, tmp_path)
        worst = 0.0
        for (name, ref), got in zip(refs.items(), outs):
            assert [g.shape for g in got] == [r.shape for r in ref], name
            d = max(float(np.max(np.abs(g - r))) for g, r in zip(got, ref))
            assert d < ATOL, f"{stage} {name} oneDNN={onednn}: max |diff| {d}"
            worst = max(worst, d)
        print(f"{stage} oneDNN={onednn}: max |diff| {worst:.2e} over {len(ins)} inputs")


def test_outputs_mean_what_the_docs_say(torch_nets: dict[str, nn.Module]) -> None:
    """Face scores, regression and landmark order on a real face (guards the output order)."""
    onet = ONet()
    onet.load_state_dict(torch_nets["onet"].state_dict())
    x = _inputs("onet")["face_crops"][:1]
    with torch.no_grad():
        reg, lm, prob = (o.numpy()[0] for o in onet(torch.from_numpy(x)))
    assert prob[1] > 0.9 and reg.shape == (4,)
    xs, ys = lm[:5], lm[5:]
    assert xs[0] < xs[2] < xs[1] and xs[3] < xs[4]  # left eye, nose, right eye; mouth left/right
    assert max(ys[0], ys[1]) < ys[2] < min(ys[3], ys[4])  # eyes above nose above mouth
    with torch.no_grad():
        _, probs = torch_nets["pnet"](torch.from_numpy(_inputs("pnet")[f"pyramid_{0.6 * 0.709**4:.4f}"]))
    assert float(probs[0, 1].max()) > 0.9  # the face fires somewhere at a 12-px-face pyramid level


def test_bundle_yml_and_manifest(bundles: Path) -> None:
    for stage in STAGES:
        b = bundles / f"mtcnn_{stage}"
        assert bw.verify_bundle(b) == []
        yml = yaml.safe_load((b / "inference.yml").read_text())
        norm = next(op for op in yml["Preprocess"] if op["type"] == "NormalizeImage")
        assert norm["mean"] == [127.5] * 3 and norm["std"] == [128.0] * 3 and norm["is_scale"] is False
        assert yml["MTCNN"]["role"] == stage and yml["Global"]["model_name"] == f"MTCNN_{stage.upper()}"
        man = json.loads((b / "manifest.json").read_text())
        assert man["task"] == "face_detection" and man["role"] == stage and man["runtime"]["role"] == stage
        src = man["source"]
        assert (src["package"], src["version"], src["license"]) == ("facenet-pytorch", "2.6.0", "MIT")
        with zipfile.ZipFile(_wheel()) as zf:
            import hashlib

            assert src["sha256"] == hashlib.sha256(zf.read(mtcnn.member(stage))).hexdigest()
        assert man["runtime"]["outputs"] == yml["MTCNN"]["outputs"]
        shape = man["runtime"]["input_shape"]
        size = mtcnn.STAGES[stage]["size"]
        assert shape == ([None, 3, None, None] if stage == "pnet" else [None, 3, size, size])


def test_converter_refuses_unmapped_or_misshapen_weights() -> None:
    sd, _ = mtcnn.read_state_dict(_wheel(), "rnet")
    with pytest.raises(ValueError, match="not mapped"):
        mtcnn.build_paddle_net("rnet", {**sd, "extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="expects"):
        mtcnn.nchw_dense_weight(sd["dense4.weight"], 64, 2, 2)
    with pytest.raises(KeyError):
        mtcnn.build_paddle_net("onet", sd)  # RNet weights are not an ONet


def test_dense_permutation_matches_permute_0321() -> None:
    rng = np.random.default_rng(5)
    w = rng.normal(size=(7, 2 * 3 * 3)).astype(np.float32)
    feat = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    ref = feat.transpose(0, 3, 2, 1).reshape(4, -1) @ w.T
    np.testing.assert_allclose(feat.reshape(4, -1) @ mtcnn.nchw_dense_weight(w, 2, 3, 3), ref, rtol=1e-5, atol=1e-5)


def test_registry_modules_expose_the_converter_interface() -> None:
    import importlib

    for s in STAGES:
        mod = importlib.import_module(f"tools.convert.mtcnn.{s}")
        assert mod.BUNDLE_NAME == f"mtcnn_{s}" and mod.SOURCES == [mtcnn.ARCHIVE] and callable(mod.build)
        assert mod.TOOL == "tools/convert/mtcnn.py" and mod.TOOL_VERSION == mtcnn.TOOL_VERSION
