"""The gallery CLI: PaddleX-layout build (with bad lines), export/import round trip, list."""

from __future__ import annotations

import json
import sqlite3

import cv2
import numpy as np
import pytest
import yaml

from tests.unit import face_fakes as F
from visionpack.gallery import DEFAULT_INDEX, Gallery, IndexParams, NewFace, cli
from visionpack.gallery.sqlite_store import SqliteStore, db_path


def write_image(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(F.picture(colour), cv2.COLOR_RGB2BGR))


@pytest.fixture
def deploy(tmp_path, monkeypatch):
    """A config.yml with fake bundles; the CLI gets the fake engines."""
    cfg = F.face_config(tmp_path)
    path = tmp_path / "config.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "deploy": cfg.deploy,
                "service": "face",
                "models": dict(cfg.models),
                "options": dict(cfg.options),
                "data_dir": cfg.data_dir,
            }
        )
    )
    monkeypatch.setattr(cli, "engine_factory", lambda: F.factory())
    return path, cfg


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_build_from_gallery_txt_with_progress(tmp_path, deploy, capsys):
    config, cfg = deploy
    root = tmp_path / "gal"
    write_image(root / "images/alice/a1.jpg", F.RED)
    write_image(root / "images/alice/a2.png", F.RED)
    write_image(root / "images/bob/b1.jpg", F.GREEN)
    (root / "gallery.txt").write_text(
        "images/alice/a1.jpg alice\n\n# comment\nimages/alice/a2.png alice\nimages/bob/b1.jpg Bob Smith\n"
    )
    code, out, err = run(capsys, "--config", config, "build", root, "--index", "team")
    assert code == 0, err
    assert json.loads(out) == {"index": "team", "added": 3, "skipped": 0, "whole_image_no_face": 0}
    assert "[3/3] 100%" in err and "building index 'team' from 3 images" in err
    assert "search index of 3 vectors ready" in err
    store = SqliteStore(db_path(cfg.data_dir))
    assert store.id_map("team") == {0: "alice", 1: "alice", 2: "Bob Smith"}
    code, out, err = run(capsys, "--config", config, "list")
    assert code == 0 and "team\t3 faces\t2 labels" in out and "default\t0 faces" in out
    code, out, err = run(capsys, "--config", config, "list", "--index", "team")
    assert out.splitlines() == ["0\talice", "1\talice", "2\tBob Smith"] and "3 faces" in err


def test_build_from_image_folders_without_a_list(tmp_path, deploy, capsys):
    config, cfg = deploy
    root = tmp_path / "gal"
    write_image(root / "images/carol/x/deep.jpg", F.BLUE)  # nested folders are allowed (PaddleX layout)
    write_image(root / "images/dan/d.jpg", F.YELLOW)
    (root / "images/dan/notes.txt").write_text("not an image")
    code, out, _ = run(capsys, "--config", config, "build", root)
    assert code == 0 and json.loads(out)["added"] == 2
    assert sorted(SqliteStore(db_path(cfg.data_dir)).id_map(DEFAULT_INDEX).values()) == ["carol", "dan"]


def test_bad_lines_are_all_reported_with_numbers_and_nothing_is_written(tmp_path, deploy, capsys):
    config, cfg = deploy
    root = tmp_path / "gal"
    write_image(root / "images/a/ok.jpg", F.RED)
    (root / "images/a/fake.jpg").write_bytes(b"GIF89a not a jpeg")
    (root / "gallery.txt").write_text(
        "images/a/ok.jpg a\nimages/a/missing.jpg a\nimages/a/ok.jpg\n../outside.jpg a\nimages/a/fake.jpg a\n"
    )
    code, out, err = run(capsys, "--config", config, "build", root)
    assert code == 2 and out == ""
    assert "gallery.txt:2: images/a/missing.jpg does not exist" in err
    assert "gallery.txt:3: expected 'path label'" in err
    assert "gallery.txt:4: ../outside.jpg is outside" in err
    assert "gallery.txt:5: images/a/fake.jpg: not a jpg, png or bmp file" in err
    assert not db_path(cfg.data_dir).exists() or SqliteStore(db_path(cfg.data_dir)).stats() == []


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda root: None, "is not a directory"),
        (lambda root: root.mkdir(), "neither gallery.txt nor images/"),
        (lambda root: (root.mkdir(), (root / "gallery.txt").write_text("\n# nothing\n")), "no images listed"),
    ],
)
def test_unusable_directories(tmp_path, deploy, capsys, setup, message):
    config, _ = deploy
    root = tmp_path / "gal"
    setup(root)
    code, _, err = run(capsys, "--config", config, "build", root)
    assert code == 2 and message in err


def test_export_import_round_trip(tmp_path, capsys):
    src_dir, dst_dir = tmp_path / "a", tmp_path / "b"
    g = Gallery.open(src_dir, IndexParams(), "m1", 4)
    vecs = np.eye(4, dtype=np.float32)
    key, _ = g.build([NewFace(f"p{i}", v, b"crop%d" % i) for i, v in enumerate(vecs)], key="team")
    g.remove(key, [1])
    g.add(DEFAULT_INDEX, [NewFace("d", vecs[0], b"dd")])
    backup = tmp_path / "backup.sqlite3"
    code, out, _ = run(capsys, "--data-dir", src_dir, "export", backup)
    assert code == 0 and json.loads(out)["file"] == str(backup)
    assert not list(tmp_path.glob(".backup*"))  # no temp file left behind
    code, out, _ = run(capsys, "--data-dir", dst_dir, "import", backup)
    assert code == 0 and json.loads(out) == {"imported": {"default": 1, "team": 3}}
    h = Gallery.open(dst_dir, IndexParams(), "m1", 4)
    assert h.id_map("team") == {0: "p0", 2: "p2", 3: "p3"}
    assert h.store.crop("team", 3) == b"crop3"
    assert h.search("team", vecs[2:3], 1)[0][0].label == "p2"
    assert h.add("team", [NewFace("new", vecs[1], b"")]) == [4]  # ids continue, never reused
    # Importing again clashes unless --replace; replacing restores the backup's content.
    code, _, err = run(capsys, "--data-dir", dst_dir, "import", backup)
    assert code == 2 and "already exist" in err
    before = h.fresh("team").gen
    code, out, _ = run(capsys, "--data-dir", dst_dir, "import", backup, "--replace")
    assert code == 0
    assert h.id_map("team") == {0: "p0", 2: "p2", 3: "p3"}
    # A process that had the old index loaded reloads it in full at its next search.
    assert 4 not in h.fresh("team").labels and h.fresh("team").gen > before


def test_import_refuses_files_that_are_not_exports(tmp_path, capsys):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    code, _, err = run(capsys, "--data-dir", tmp_path / "d", "import", junk)
    assert code == 2 and "not a gallery export" in err
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE meta (key TEXT, value TEXT)").connection.commit()
    code, _, err = run(capsys, "--data-dir", tmp_path / "d", "import", other)
    assert code == 2 and "not a gallery export" in err


def test_commands_without_a_data_dir_are_usage_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VISIONPACK_CONFIG", raising=False)
    cfg = tmp_path / "c.yml"
    cfg.write_text("deploy: x\n")
    code, _, err = run(capsys, "--config", cfg, "list")
    assert code == 2 and "--data-dir" in err


def test_dropped_and_recreated_index_is_reloaded_by_a_caching_process(tmp_path):
    a, b = Gallery.open(tmp_path, IndexParams(), "m", 4), Gallery.open(tmp_path, IndexParams(), "m", 4)
    vecs = np.eye(4, dtype=np.float32)
    a.build([NewFace("old", vecs[0], b"")], key="k")
    assert b.search("k", vecs[:1], 1)[0][0].label == "old"
    a.drop("k")
    a.build([NewFace("new", vecs[0], b"")], key="k")
    assert b.search("k", vecs[:1], 1)[0][0].label == "new"
