"""Deleting index keys (API, CLI, library) and the cap on how many keys a gallery holds."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from visionpack.errors import InvalidArgument
from visionpack.gallery import DEFAULT_INDEX, Gallery, IndexParams, NewFace, cli
from visionpack.gallery.sqlite_store import db_path

DIM = 8


def vecs(n, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def open_gallery(tmp_path, max_keys=None, index_type="Flat"):
    return Gallery.open(tmp_path, IndexParams(index_type), "m", DIM, max_keys=max_keys)


def rows(tmp_path, sql, *args):
    with sqlite3.connect(db_path(tmp_path)) as c:
        return c.execute(sql, args).fetchall()


@pytest.mark.parametrize("index_type", ["Flat", "IVF", "HNSW32"])
def test_delete_removes_faces_crops_vectors_and_tombstones_in_one_go(tmp_path, index_type):
    g = open_gallery(tmp_path, index_type=index_type)
    key, ids = g.build([NewFace(f"p{i}", v, b"CROP-%04d-" % i * 300) for i, v in enumerate(vecs(80))])
    g.remove(key, ids[:3])  # leaves tombstones
    other, _ = g.build([NewFace("q", vecs(1, seed=1)[0], b"keep")])
    assert g.delete(key) == 77
    assert key not in g.keys() and other in g.keys()  # noqa: SIM118  (Gallery.keys() reads the store)
    assert rows(tmp_path, "SELECT COUNT(*) FROM faces WHERE index_key=?", key) == [(0,)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM removed WHERE index_key=?", key) == [(0,)]
    assert rows(tmp_path, "SELECT COUNT(*) FROM faces WHERE index_key=?", other) == [(1,)]
    with pytest.raises(InvalidArgument, match="unknown indexKey"):
        g.search(key, vecs(1), 1)
    # secure_delete (set by the store, whatever SQLite's build default): the crops are not left
    # behind in the database file's free pages.
    assert g.store.conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    g.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"CROP-0007-" not in db_path(tmp_path).read_bytes()


def test_every_process_follows_a_delete_and_a_recreated_key_starts_empty(tmp_path):
    writer, reader = open_gallery(tmp_path), open_gallery(tmp_path)
    key, _ = writer.build([NewFace("old", vecs(1)[0], b"")], key="team")
    assert reader.search("team", vecs(1), 1)[0][0].label == "old"
    assert "team" in reader._indexes
    writer.delete("team")
    with pytest.raises(InvalidArgument):
        reader.search("team", vecs(1), 1)
    assert "team" not in reader._indexes  # the stale copy is freed, not kept forever
    writer.build([NewFace("new", vecs(1, seed=3)[0], b"")], key="team")
    assert [h.label for h in reader.search("team", vecs(1), 5)[0]] == ["new"]


def test_deleting_the_default_index_empties_it_and_keeps_it(tmp_path):
    g, other = open_gallery(tmp_path), open_gallery(tmp_path)
    g.add(DEFAULT_INDEX, [NewFace("a", v, b"") for v in vecs(3)])
    assert len(other.fresh(DEFAULT_INDEX)) == 3
    assert g.delete(DEFAULT_INDEX) == 3
    assert DEFAULT_INDEX in g.keys() and g.id_map(DEFAULT_INDEX) == {}  # noqa: SIM118  (Gallery.keys() reads the store)
    assert len(other.fresh(DEFAULT_INDEX)) == 0  # the other worker reloads the empty index
    assert g.add(DEFAULT_INDEX, [NewFace("b", vecs(1)[0], b"")]) == [0]


def test_delete_removes_the_index_snapshots(tmp_path, monkeypatch):
    import visionpack.gallery as gallery_mod

    monkeypatch.setattr(gallery_mod, "SNAPSHOT_MIN", 2)
    g = open_gallery(tmp_path)
    key, _ = g.build([NewFace("a", v, b"") for v in vecs(4)])
    g.fresh(key)
    snapshot = g.snapshot_path(key)
    assert snapshot.exists()
    g.delete(key)
    assert not snapshot.exists()


def test_unknown_keys_cannot_be_deleted(tmp_path):
    with pytest.raises(InvalidArgument, match="unknown indexKey 'ghost'"):
        open_gallery(tmp_path).delete("ghost")


def test_the_key_cap_refuses_new_keys_but_not_existing_ones(tmp_path):
    g = open_gallery(tmp_path, max_keys=3)  # "default" is one of the three
    g.build([], key="a")
    g.ensure("b")
    with pytest.raises(InvalidArgument, match="already holds 3 index keys"):
        g.build([NewFace("x", vecs(1)[0], b"")])
    with pytest.raises(InvalidArgument, match="max_index_keys"):
        g.ensure("c")
    g.ensure("b")  # exists: no new key
    assert g.add("a", [NewFace("x", vecs(1)[0], b"")]) == [0]
    assert sorted(g.keys()) == ["a", "b", "default"]  # noqa: SIM118  (Gallery.keys() reads the store)
    g.delete("a")
    g.ensure("c")
    assert sorted(g.keys()) == ["b", "c", "default"]  # noqa: SIM118  (Gallery.keys() reads the store)


def test_cli_delete(tmp_path, capsys):
    g = open_gallery(tmp_path)
    g.build([NewFace("a", v, b"") for v in vecs(2)], key="team")
    assert cli.main(["--data-dir", str(tmp_path), "delete", "team"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"deleted": "team", "faces": 2, "emptied_only": False}
    assert "team" not in g.keys()  # noqa: SIM118  (Gallery.keys() reads the store)
    assert cli.main(["--data-dir", str(tmp_path), "delete", "team"]) == 2
    assert "unknown indexKey" in capsys.readouterr().err
    assert cli.main(["--data-dir", str(tmp_path), "delete", DEFAULT_INDEX]) == 0
    assert json.loads(capsys.readouterr().out)["emptied_only"] is True
    assert g.keys() == [DEFAULT_INDEX]  # noqa: SIM118  (Gallery.keys() reads the store)
