"""visionpack/bundle.py: which files a bundle has, their checksums, its task and its format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from visionpack import bundle as B
from visionpack.errors import ModelInvalid

CLS_YML = "Global:\n  model_name: tiny\nPreProcess:\n  transform_ops: []\nPostProcess:\n  Topk:\n    topk: 5\n"


def make(tmp_path: Path, graph: str = "inference.json", yml: str = CLS_YML, manifest: dict | None = None) -> Path:
    d = tmp_path / "b"
    d.mkdir(parents=True)
    (d / graph).write_bytes(b"graph")
    (d / "inference.pdiparams").write_bytes(b"params")
    (d / "inference.yml").write_text(yml)
    if manifest is not None:
        (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_files_prefer_the_json_graph_like_paddlex(tmp_path):
    d = make(tmp_path)
    (d / "inference.pdmodel").write_bytes(b"stale")
    f = B.files(d)
    assert (f.model_file.name, f.params_file.name, f.config_file.name) == (
        "inference.json",
        "inference.pdiparams",
        "inference.yml",
    )
    assert f.manifest_file == d / "manifest.json" and f.missing() == []
    (d / "inference.json").unlink()
    assert B.files(d).model_file.name == "inference.pdmodel"


def test_missing_files_are_named(tmp_path):
    d = make(tmp_path)
    (d / "inference.json").unlink()
    (d / "inference.yml").unlink()
    assert B.files(d).missing() == ["inference.json or inference.pdmodel", "inference.yml"]
    with pytest.raises(ModelInvalid, match="lacks inference.json or inference.pdmodel, inference.yml"):
        B.load_bundle(d)
    with pytest.raises(ModelInvalid, match="is not a directory"):
        B.load_bundle(tmp_path / "nothing")


def test_checksums_cover_every_file_and_damage_is_found(tmp_path):
    d = make(tmp_path)
    sums = B.checksums(d)
    assert sums == {
        "inference.json": sha(b"graph"),
        "inference.pdiparams": sha(b"params"),
        "inference.yml": sha(CLS_YML.encode()),
    }
    assert B.damaged(d, sums) == []
    (d / "inference.pdiparams").write_bytes(b"tampered")
    (d / "inference.yml").unlink()
    assert B.damaged(d, sums) == [
        B.Damage("inference.pdiparams", B.MISMATCH, sha(b"tampered")),
        B.Damage("inference.yml", B.MISSING),
    ]
    # Precomputed sums are used as they are (a caller that records them hashes once).
    assert B.damaged(d, sums, {**sums, "inference.json": "0" * 64})[0] == B.Damage(
        "inference.json", B.MISMATCH, "0" * 64
    )


def test_declared_checksums_come_from_the_manifest(tmp_path):
    d = make(tmp_path, manifest={"schema": 1, "files": {"inference.json": sha(b"graph").upper()}})
    declared = B.declared_checksums(B.read_manifest(d))
    assert declared == {"inference.json": sha(b"graph")}  # compared lower-case
    assert B.damaged(d, declared) == []
    assert "manifest.json" in B.checksums(d)
    assert B.declared_checksums({}) == {} and B.declared_checksums({"files": ["x"]}) == {}


@pytest.mark.parametrize("text,match", [("{not json", "not valid JSON"), ("[1, 2]", "top level must be an object")])
def test_a_corrupt_manifest_is_a_model_error(tmp_path, text, match):
    d = make(tmp_path)
    (d / "manifest.json").write_text(text)
    with pytest.raises(ModelInvalid, match=match):
        B.read_manifest(d)
    with pytest.raises(ModelInvalid, match=match):
        B.load_bundle(d)


def test_no_manifest_reads_as_empty(tmp_path):
    assert B.read_manifest(make(tmp_path)) == {}


@pytest.mark.parametrize(
    "config,task",
    [
        ({"PreProcess": {}, "PostProcess": {"Topk": {}}}, "image_classification"),
        ({"PreProcess": {}, "PostProcess": {"NormalizeFeatures": {}}}, "face_feature"),
        ({"Preprocess": [{"type": "Resize"}]}, "object_detection"),
        ({"Preprocess": [{"type": "TopDownEvalAffine"}]}, "keypoint_detection"),
        ({"Global": {}}, "unknown"),
    ],
)
def test_task_of_a_raw_export_from_its_yml(config, task):
    assert B.infer_task(config) == task


def test_the_manifest_names_task_and_format(tmp_path):
    d = make(
        tmp_path,
        manifest={
            "schema": 1,
            "name": "n",
            "task": "face_feature",
            "engine": "onnxruntime",
            "runtime": {"onednn": True},
        },
    )
    b = B.load_bundle(d)
    assert (b.name, b.task, b.engine, b.onednn_default, b.model_name) == (
        "n",
        "face_feature",
        "onnxruntime",
        True,
        "tiny",
    )
    raw = B.load_bundle(make(tmp_path / "raw"))
    assert (raw.name, raw.task, raw.engine, raw.onednn_default) == ("b", "image_classification", "paddle", False)


@pytest.mark.parametrize("kind", [3, "Paddle", "../x", "a" * 40])
def test_a_format_that_is_not_a_short_name_is_a_model_error(kind):
    with pytest.raises(ModelInvalid, match="engine"):
        B.engine_kind({"engine": kind}, "models/x")


def make_onnx_only(tmp_path: Path, *names: str, manifest: dict | None = None) -> Path:
    d = tmp_path / "onnx-only"
    d.mkdir(parents=True)
    for name in names or ("inference.onnx",):
        (d / name).write_bytes(b"onnx " + name.encode())
    (d / "inference.yml").write_text(CLS_YML)
    if manifest is not None:
        (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_formats_list_the_paddle_graph_and_the_onnx_rendition(tmp_path):
    d = make(tmp_path, manifest={"schema": 1, "onnx": {"file": "inference.onnx", "opset": 11}})
    b = B.load_bundle(d)
    assert b.formats == {"paddle": d / "inference.json"}  # the record alone is no file
    (d / "inference.onnx").write_bytes(b"onnx")
    assert b.formats == {"paddle": d / "inference.json", "onnx": d / "inference.onnx"}
    assert b.onnx_info == {"file": "inference.onnx", "opset": 11}
    assert b.parity is None
    (d / "parity.npz").write_bytes(b"npz")
    assert b.parity == d / "parity.npz"
    assert B.files(d).onnx_file == d / "inference.onnx" and not B.files(d).onnx_only
    (d / "inference.pdiparams").unlink()  # a graph without its weights is no Paddle format
    assert set(b.formats) == {"onnx"}


def test_a_raw_export_has_no_onnx_record_and_the_paddle_only_mark_is_kept(tmp_path):
    b = B.load_bundle(make(tmp_path))
    assert (b.onnx_info, b.parity, list(b.formats)) == ({}, None, ["paddle"])
    why = {"unavailable": "Split with a zero part"}
    marked = B.load_bundle(make(tmp_path / "m", manifest={"schema": 1, "onnx": why}))
    assert marked.onnx_info == why and list(marked.formats) == ["paddle"]


def test_an_onnx_only_bundle_loads_with_its_yml(tmp_path):
    d = make_onnx_only(tmp_path, "model.onnx")
    assert B.files(d).missing() == [] and B.files(d).onnx_only
    b = B.load_bundle(d)
    assert b.model_file == d / "model.onnx" and not b.params_file.exists()
    assert (b.task, b.model_name, b.engine) == ("image_classification", "tiny", "onnxruntime")
    assert b.formats == {"onnx": d / "model.onnx"}
    (d / "inference.yml").unlink()
    assert B.files(d).missing() == ["inference.yml"]
    with pytest.raises(ModelInvalid, match="lacks inference.yml"):
        B.load_bundle(d)


def test_an_onnx_only_bundle_with_several_models_must_name_one(tmp_path):
    d = make_onnx_only(tmp_path, "a.onnx", "b.onnx")
    with pytest.raises(ModelInvalid, match=r"several ONNX models \(a.onnx, b.onnx\)"):
        B.load_bundle(d)
    (d / "manifest.json").write_text(json.dumps({"onnx": {"file": "b.onnx"}}))
    assert B.load_bundle(d).model_file == d / "b.onnx"
    (d / "manifest.json").write_text(json.dumps({"onnx": {"file": "c.onnx"}}))
    with pytest.raises(ModelInvalid, match="lacks c.onnx"):
        B.load_bundle(d)
    (d / "manifest.json").unlink()
    (d / "inference.onnx").write_bytes(b"x")  # inference.onnx is the one served
    assert B.load_bundle(d).model_file == d / "inference.onnx"


def test_parity_tolerance_per_task_and_from_the_manifest(tmp_path):
    raw = B.load_bundle(make(tmp_path))
    assert raw.parity_tolerance == B.PARITY_TOLERANCE["image_classification"]
    d = make(tmp_path / "m", manifest={"task": "object_detection", "parity_tolerance": {"max_abs_diff": 0.5}})
    assert B.load_bundle(d).parity_tolerance == {"max_abs_diff": 0.5, "cosine_min": 0.9999}
    assert B.parity_tolerance({}, "no-such-task", "x") == B.DEFAULT_TOLERANCE
    assert set(B.PARITY_TOLERANCE) == set(B.TASKS)


@pytest.mark.parametrize(
    "manifest,match",
    [
        ({"onnx": "inference.onnx"}, "'onnx' must be an object"),
        ({"onnx": {"file": "../x.onnx"}}, "must be a \\*.onnx file name"),
        ({"onnx": {"file": "model.bin"}}, "must be a \\*.onnx file name"),
        ({"parity_tolerance": [1]}, "'parity_tolerance' must be an object"),
        ({"parity_tolerance": {"rtol": 1}}, "unknown key 'rtol'"),
        ({"parity_tolerance": {"max_abs_diff": -1}}, "must be a number >= 0"),
        ({"parity_tolerance": {"cosine_min": True}}, "must be a number >= 0"),
        ({"parity_tolerance": {"cosine_min": "high"}}, "must be a number >= 0"),
    ],
)
def test_a_malformed_onnx_or_tolerance_record_fails_at_load(tmp_path, manifest, match):
    with pytest.raises(ModelInvalid, match=match):
        B.load_bundle(make(tmp_path, manifest=manifest))
