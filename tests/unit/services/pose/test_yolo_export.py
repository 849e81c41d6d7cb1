"""Reading an Ultralytics export as ``yolo export`` wrote it (services/pose/yolo_export.py): the ONNX file's
metadata_props and declared shapes, the Paddle folder's metadata.yaml, and every refusal."""

from __future__ import annotations

import pytest

from tests.yolo_onnx import metadata, pose_table, write_onnx, write_paddle_export
from visionpack.bundle import ONNX, PADDLE
from visionpack.errors import ModelInvalid
from visionpack.services.pose import yolo_export as YE


def onnx_export(tmp_path, meta=None, name="yolov8n-pose.onnx", **kw):
    table = pose_table([], 84, tuple((meta or metadata())["kpt_shape"]))
    return write_onnx(tmp_path / "model" / name, table, metadata() if meta is None else meta, **kw).parent


def test_an_onnx_export_is_read_from_its_own_metadata_and_runs_on_onnx_runtime(tmp_path):
    d = onnx_export(tmp_path, batch="batch")
    assert YE.is_export(d)
    b = YE.load_export(d)
    assert b.meta["kpt_shape"] == [17, 3] and b.meta["names"] == {0: "person"} and b.meta["end2end"] is False
    assert b.inputs == (("batch", 3, 64, 64),) and b.outputs == (("batch", 56, 84),)
    assert b.formats == {ONNX: d / "yolov8n-pose.onnx"} and b.engine == "onnxruntime" and b.task == "pose"
    assert b.model_name == "yolov8n-pose"
    spec = YE.check_metadata(b.meta, "x")
    assert (spec.kpt_shape, spec.imgsz, spec.names, spec.stride, spec.batch) == ((17, 3), (64, 64), ("person",), 32, 1)


def test_a_paddle_export_folder_is_read_itself_or_from_the_model_directory(tmp_path):
    folder = write_paddle_export(tmp_path / "m" / "yolov8n-pose_paddle_model", metadata(kpt_shape=(5, 2)))
    for where in (folder, folder.parent):
        assert YE.is_export(where)
        b = YE.load_export(where)
        assert b.formats == {PADDLE: folder / "inference_model" / "model.json"} and b.engine == "paddle"
        assert b.params_file == folder / "inference_model" / "model.pdiparams"
        assert YE.check_metadata(b.meta, "x").kpt_shape == (5, 2)


def test_a_directory_with_both_exports_serves_the_onnx_one_by_default(tmp_path):
    d = onnx_export(tmp_path)
    write_paddle_export(d / "yolov8n-pose_paddle_model", metadata())
    b = YE.load_export(d)
    assert set(b.formats) == {ONNX, PADDLE} and b.engine == "onnxruntime"


def test_a_paddlex_bundle_is_not_an_export(tmp_path):
    (tmp_path / "inference.yml").write_text("Global: {}\n")
    (tmp_path / "inference.onnx").write_bytes(b"")
    assert not YE.is_export(tmp_path)
    assert not YE.is_export(tmp_path / "nothing")


@pytest.mark.parametrize(
    "meta, message",
    [
        ({}, r"no Ultralytics metadata \(task, kpt_shape, imgsz\).*yolo export"),
        (metadata(task="detect"), r"an Ultralytics 'detect' export; the keypoint service serves pose exports"),
        (metadata(end2end=True), r"NMS inside the graph"),
        (metadata(nms=True), r"NMS inside the graph"),
        (metadata(kpt_shape=[17, 4]), r"kpt_shape must be \[K, 2\] or \[K, 3\], got \[17, 4\]"),
        (metadata(kpt_shape=[0, 3]), r"kpt_shape must be"),
        (metadata(imgsz="big"), r"imgsz must be \[height, width\], got 'big'"),
        (metadata(names={1: "person"}), r"names must map class ids 0..n-1"),
        (metadata(names=["person"]), r"names must map class ids 0..n-1"),
        (metadata(stride=0), r"stride and batch must be positive integers"),
        (metadata(batch=True), r"stride and batch must be positive integers"),
    ],
)
def test_metadata_that_is_not_a_servable_pose_export_is_refused_at_load(tmp_path, meta, message):
    with pytest.raises(ModelInvalid, match=message):
        YE.load_export(onnx_export(tmp_path, meta))


def test_an_integer_imgsz_is_square():
    assert YE.check_metadata(metadata(imgsz=320), "x").imgsz == (320, 320)


def test_refusals_of_the_layout(tmp_path):
    with pytest.raises(ModelInvalid, match="is not a directory"):
        YE.load_export(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelInvalid, match=r"holds no Ultralytics export \(\*.onnx or \*_paddle_model/\)"):
        YE.load_export(tmp_path / "empty")
    two = onnx_export(tmp_path)
    onnx_export(tmp_path, name="other.onnx")
    with pytest.raises(ModelInvalid, match=r"several ONNX files \(other.onnx, yolov8n-pose.onnx\): keep one"):
        YE.load_export(two)
    p = tmp_path / "p"
    write_paddle_export(p / "a_paddle_model", metadata())
    write_paddle_export(p / "b_paddle_model", metadata())
    with pytest.raises(ModelInvalid, match="several Paddle exports"):
        YE.load_export(p)
    half = write_paddle_export(tmp_path / "h" / "c_paddle_model", metadata())
    (half / "inference_model" / "model.pdiparams").unlink()
    with pytest.raises(ModelInvalid, match=r"lacks inference_model/model.pdiparams"):
        YE.load_export(half.parent)


def test_unreadable_metadata_yaml_is_refused(tmp_path):
    folder = write_paddle_export(tmp_path / "x_paddle_model", metadata())
    (folder / "metadata.yaml").write_text("a: [")
    with pytest.raises(ModelInvalid, match="not readable YAML"):
        YE.load_export(folder)
    (folder / "metadata.yaml").write_text("- a\n")
    with pytest.raises(ModelInvalid, match="top level must be a mapping"):
        YE.load_export(folder)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x0a\x05ab", r"truncated field 1"),
        (b"\x08\xff", r"bad varint"),
        (b"\x0b", r"wire type 3"),
        (b"\x08\x01", r"no graph"),
    ],
)
def test_a_file_that_is_not_onnx_is_refused(tmp_path, data, message):
    (tmp_path / "m.onnx").write_bytes(data)
    with pytest.raises(ModelInvalid, match=message):
        YE.onnx_shapes(tmp_path / "m.onnx")


def test_metadata_values_that_are_not_python_literals_stay_text(tmp_path):
    d = onnx_export(tmp_path, {**metadata(), "date": "2026-12-07T06:00:00", "license": "AGPL-3.0"})
    meta = YE.load_export(d).meta
    assert meta["date"] == "2026-12-07T06:00:00" and meta["license"] == "AGPL-3.0"


def test_fixed_point_fields_of_the_wire_format_are_skipped(tmp_path):
    # field 15 (fixed64) and 16 (fixed32) before the metadata: skipped, not misread
    f = tmp_path / "m.onnx"
    body = bytes([0x79]) + b"\0" * 8 + bytes([0x85, 0x01]) + b"\0" * 4
    body += bytes([0x72, 0x0C, 0x0A, 0x04]) + b"task" + bytes([0x12, 0x04]) + b"pose"
    f.write_bytes(body)
    assert YE.onnx_metadata(f) == {"task": "pose"}


def test_the_installer_takes_an_export_for_a_complete_model_and_other_services_refuse_it(tmp_path):
    from visionpack.bundle import files, load_bundle

    d = onnx_export(tmp_path)
    folder = write_paddle_export(tmp_path / "p" / "y_paddle_model", metadata())
    for where in (d, folder, folder.parent):
        assert files(where).missing() == []
        with pytest.raises(ModelInvalid, match=r"is an Ultralytics export, not a PaddleX bundle: .* model 'pose'"):
            load_bundle(where)
    plain = write_onnx(tmp_path / "plain" / "m.onnx", pose_table([], 84), None).parent  # no metadata
    assert files(plain).missing() == ["inference.yml"] and not YE.is_export(plain)
