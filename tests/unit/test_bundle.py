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
