"""Gallery store + faiss index: add/remove/search per index type and metric, freshness, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from visionpack.errors import ConfigInvalid, InvalidArgument, ModelInvalid
from visionpack.gallery import (
    DEFAULT_INDEX,
    Gallery,
    IndexParams,
    NewFace,
    UnknownIndex,
    index as index_mod,
    sqlite_store as store_mod,
)
from visionpack.gallery.sqlite_store import SqliteStore, db_path

DIM = 16
TYPES = ("Flat", "IVF", "HNSW32")
METRICS = ("IP", "L2")


def unit_vectors(n, seed=0, dim=DIM):
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def faces(vectors, prefix="p"):
    return [NewFace(f"{prefix}{i}", v, b"png") for i, v in enumerate(vectors)]


def open_gallery(tmp_path, index_type="Flat", metric="IP", model="m1", dim=DIM):
    return Gallery.open(tmp_path, IndexParams(index_type, metric), model, dim)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("index_type", TYPES)
def test_add_search_remove_every_type_and_metric(tmp_path, index_type, metric):
    g = open_gallery(tmp_path, index_type, metric)
    vecs = unit_vectors(200)
    key, ids = g.build(faces(vecs))
    assert ids == list(range(200))
    hits = g.search(key, vecs[:5], 3)
    for i, row in enumerate(hits):
        assert row[0].id == i and row[0].label == f"p{i}"
        assert row[0].score == pytest.approx(1.0 if metric == "IP" else 0.0, abs=1e-5)
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=(metric == "IP"))
    gone = g.remove(key, [0, 1, 999])
    assert gone == [0, 1]
    hits = g.search(key, vecs[:3], 3)
    assert all(h.id not in (0, 1) for row in hits for h in row)
    assert hits[2][0].id == 2
    new = g.add(key, faces(unit_vectors(3, seed=7), prefix="n"))
    assert new == [200, 201, 202]  # ids are never reused, even after removals
    assert g.search(key, unit_vectors(3, seed=7)[:1], 1)[0][0].label == "n0"
    assert len(g.fresh(key)) == 201


def test_hnsw_removal_uses_a_filter_then_rebuilds(tmp_path, monkeypatch):
    monkeypatch.setattr(index_mod, "REBUILD_DEAD_MIN", 10)
    g = open_gallery(tmp_path, "HNSW32")
    vecs = unit_vectors(100)
    key, _ = g.build(faces(vecs))
    g.fresh(key)
    g.remove(key, range(5))
    idx = g.fresh(key)
    assert idx.dead == set(range(5))
    assert all(row[0].id >= 5 for row in g.search(key, vecs[:5], 1))
    g.remove(key, range(5, 25))  # 25 dead > max(10, 0.2 * 75): rebuilt from the store
    idx = g.fresh(key)
    assert idx.dead == set() and len(idx) == 75
    assert idx._index.ntotal == 75
    assert g.search(key, vecs[30:31], 1)[0][0].id == 30


def test_ivf_retrains_when_the_gallery_grows(tmp_path):
    g = open_gallery(tmp_path, "IVF")
    key, _ = g.build(faces(unit_vectors(16)))
    assert g.fresh(key)._trained_on == 16
    g.add(key, faces(unit_vectors(100, seed=3), prefix="x"))
    idx = g.fresh(key)
    assert idx._trained_on == 116 and len(idx) == 116


def test_empty_ivf_index_trains_on_first_add(tmp_path):
    g = open_gallery(tmp_path, "IVF")
    key, _ = g.build([])
    assert g.search(key, unit_vectors(1), 5) == [[]]
    vecs = unit_vectors(10)
    g.add(key, faces(vecs))
    assert g.search(key, vecs[3:4], 1)[0][0].id == 3


def test_another_process_handle_sees_writes_at_the_next_search(tmp_path):
    writer = open_gallery(tmp_path)
    reader = open_gallery(tmp_path)
    vecs = unit_vectors(10)
    writer.add(DEFAULT_INDEX, faces(vecs[:5]))
    assert reader.search(DEFAULT_INDEX, vecs[4:5], 1)[0][0].id == 4
    gen = reader.fresh(DEFAULT_INDEX).gen
    writer.add(DEFAULT_INDEX, faces(vecs[5:], prefix="q"))
    writer.remove(DEFAULT_INDEX, [0])
    hit = reader.search(DEFAULT_INDEX, vecs[9:10], 1)[0][0]
    assert (hit.id, hit.label) == (9, "q4")
    assert reader.fresh(DEFAULT_INDEX).gen == gen + 2
    assert 0 not in reader.fresh(DEFAULT_INDEX).labels


def test_pruned_tombstones_force_a_full_reload(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "KEEP_TOMBSTONES", 2)
    writer, reader = open_gallery(tmp_path), open_gallery(tmp_path)
    vecs = unit_vectors(10)
    writer.add(DEFAULT_INDEX, faces(vecs))
    reader.fresh(DEFAULT_INDEX)
    for i in range(5):
        writer.remove(DEFAULT_INDEX, [i])
    ch = writer.store.changes(DEFAULT_INDEX, 1, "m1", DIM)
    assert ch.full and sorted(ch.ids.tolist()) == [5, 6, 7, 8, 9]
    assert sorted(reader.fresh(DEFAULT_INDEX).labels) == [5, 6, 7, 8, 9]


def test_unknown_index_is_a_client_error(tmp_path):
    g = open_gallery(tmp_path)
    for call in (
        lambda: g.search("nope", unit_vectors(1), 1),
        lambda: g.add("nope", faces(unit_vectors(1))),
        lambda: g.remove("nope", [1]),
        lambda: g.id_map("nope"),
        lambda: g.drop("nope"),
        lambda: g.store.list_faces("nope"),
        lambda: g.store.remove_label("nope", "x"),
        lambda: g.store.changes("nope", None, "m1", DIM),
    ):
        with pytest.raises(UnknownIndex) as err:
            call()
        assert isinstance(err.value, InvalidArgument) and "nope" in err.value.detail


def test_build_with_an_existing_key_is_refused_and_leaves_no_rows(tmp_path):
    g = open_gallery(tmp_path)
    g.build(faces(unit_vectors(2)), key="team")
    import sqlite3

    with pytest.raises(sqlite3.IntegrityError):
        g.build(faces(unit_vectors(2)), key="team")
    assert len(g.id_map("team")) == 2


@pytest.mark.parametrize("label", ["", "   ", "a\nb", 5, None, "x" * 257])
def test_bad_labels_are_refused_before_anything_is_written(tmp_path, label):
    g = open_gallery(tmp_path)
    with pytest.raises(InvalidArgument):
        g.add(DEFAULT_INDEX, [NewFace(label, unit_vectors(1)[0], b"")])
    assert g.id_map(DEFAULT_INDEX) == {}


@pytest.mark.parametrize("key", ["", "a\tb", 7, "k" * 129])
def test_bad_index_keys_are_refused(tmp_path, key):
    g = open_gallery(tmp_path)
    with pytest.raises(InvalidArgument):
        g.build([], key=key)


def test_id_map_list_stats_and_remove_label(tmp_path):
    g = open_gallery(tmp_path)
    vecs = unit_vectors(5)
    g.add(DEFAULT_INDEX, [NewFace(lab, v, b"c%d" % i) for i, (lab, v) in enumerate(zip("aabbb", vecs))])
    assert g.id_map(DEFAULT_INDEX) == {0: "a", 1: "a", 2: "b", 3: "b", 4: "b"}
    total, page = g.store.list_faces(DEFAULT_INDEX, start=1, length=2)
    assert total == 5 and [p["id"] for p in page] == [1, 2]
    total, page = g.store.list_faces(DEFAULT_INDEX, label="b")
    assert total == 3
    assert g.store.crop(DEFAULT_INDEX, 3) == b"c3"
    with pytest.raises(InvalidArgument):
        g.store.crop(DEFAULT_INDEX, 99)
    assert g.store.remove_label(DEFAULT_INDEX, "a") == [0, 1]
    assert g.store.remove_label(DEFAULT_INDEX, "zzz") == []
    assert g.store.stats() == [
        {"key": DEFAULT_INDEX, "faces": 3, "labels": 1, "gen": 3, "created": g.store.stats()[0]["created"]}
    ]
    g.drop(DEFAULT_INDEX)
    assert g.keys() == []


def test_vectors_of_the_wrong_size_are_a_model_error(tmp_path):
    open_gallery(tmp_path, dim=8).add(DEFAULT_INDEX, faces(unit_vectors(2, dim=8)))
    with pytest.raises(ModelInvalid, match="8 dims"):
        open_gallery(tmp_path, dim=DIM).store.changes(DEFAULT_INDEX, None, "m1", DIM)


def test_a_newer_schema_is_refused(tmp_path):
    s = SqliteStore(db_path(tmp_path))
    s.conn.execute("UPDATE meta SET value='99' WHERE key='schema'")
    s.close()
    with pytest.raises(ModelInvalid, match="schema 99"):
        SqliteStore(db_path(tmp_path))


def test_reembedding_when_the_feature_model_changes(tmp_path):
    old = open_gallery(tmp_path, model="old")
    vecs = unit_vectors(5)
    old.add(DEFAULT_INDEX, [NewFace(f"p{i}", v, bytes([i])) for i, v in enumerate(vecs)])
    new = open_gallery(tmp_path, model="new")
    # Until migrated, the old vectors are not comparable with new queries: not searched.
    assert new.search(DEFAULT_INDEX, vecs[:1], 1) == [[]]
    assert new.stale_count() == 5
    target = unit_vectors(5, seed=9)
    seen = []
    done = new.migrate(lambda crops: target[[c[0] for c in crops]], batch=2, progress=lambda d, t: seen.append((d, t)))
    assert done == 5 and new.stale_count() == 0
    assert seen[-1] == (5, 5)
    hit = new.search(DEFAULT_INDEX, target[3:4], 1)[0][0]
    assert (hit.id, hit.label) == (3, "p3") and hit.score == pytest.approx(1.0, abs=1e-5)
    # The old model's process, if still running, stops seeing them (they are 'new' rows now).
    assert old.search(DEFAULT_INDEX, vecs[:1], 1) == [[]]


def test_a_reader_following_a_migration_incrementally(tmp_path):
    old = open_gallery(tmp_path, model="old")
    old.add(DEFAULT_INDEX, faces(unit_vectors(3)))
    a, b = open_gallery(tmp_path, model="new"), open_gallery(tmp_path, model="new")
    assert len(b.fresh(DEFAULT_INDEX)) == 0
    target = unit_vectors(3, seed=5)
    a.migrate(lambda crops: target, batch=3)
    assert len(b.fresh(DEFAULT_INDEX)) == 3
    assert b.search(DEFAULT_INDEX, target[1:2], 1)[0][0].id == 1


def test_rows_reembedded_under_a_live_hnsw_index_are_rebuilt(tmp_path):
    a = open_gallery(tmp_path, "HNSW32", model="m1")
    a.add(DEFAULT_INDEX, faces(unit_vectors(4)))
    assert len(a.fresh(DEFAULT_INDEX)) == 4
    # Another process with a different model migrates; then back again: ids come back.
    other = open_gallery(tmp_path, "HNSW32", model="m2")
    other.migrate(lambda crops: unit_vectors(len(crops), seed=1))
    assert len(a.fresh(DEFAULT_INDEX)) == 0 and a.fresh(DEFAULT_INDEX).dead == {0, 1, 2, 3}
    target = unit_vectors(4, seed=2)
    a.migrate(lambda crops: target)
    idx = a.fresh(DEFAULT_INDEX)
    assert len(idx) == 4 and idx.dead == set()
    assert a.search(DEFAULT_INDEX, target[2:3], 1)[0][0].id == 2


@pytest.mark.parametrize(
    "kw",
    [
        {"index_type": "IVF64"},
        {"metric": "cosine"},
        {"hnsw_ef_search": 0},
        {"ivf_nprobe": True},
        {"hnsw_ef_construction": "40"},
    ],
)
def test_bad_index_params_are_config_errors(kw):
    with pytest.raises(ConfigInvalid):
        IndexParams(**kw)


def test_threshold_direction_follows_the_metric():
    ip, l2 = IndexParams(metric="IP"), IndexParams(metric="L2")
    assert ip.passes(0.9, 0.5) and not ip.passes(0.4, 0.5)
    # The L2 distance 0.1 is a *close* match; PaddleX's single '<' test would reject it.
    assert l2.passes(0.1, 0.5) and not l2.passes(0.9, 0.5)
    assert ip.better(0.9, 0.5) and l2.better(0.1, 0.5)


def test_search_k_larger_than_the_index_and_zero(tmp_path):
    g = open_gallery(tmp_path)
    vecs = unit_vectors(3)
    g.add(DEFAULT_INDEX, faces(vecs))
    assert len(g.search(DEFAULT_INDEX, vecs[:1], 50)[0]) == 3
    assert g.search(DEFAULT_INDEX, vecs[:2], 0) == [[], []]


# --- snapshots ---------------------------------------------------------------------------


def test_large_indexes_are_snapshotted_and_a_new_process_catches_up_from_it(tmp_path, monkeypatch):
    import visionpack.gallery as G

    monkeypatch.setattr(G, "SNAPSHOT_MIN", 10)
    monkeypatch.setattr(index_mod, "REBUILD_DEAD_MIN", 1000)
    a = open_gallery(tmp_path, "HNSW32")
    vecs = unit_vectors(40)
    a.add(DEFAULT_INDEX, faces(vecs[:30]))
    a.fresh(DEFAULT_INDEX)
    a.remove(DEFAULT_INDEX, [0])
    a.fresh(DEFAULT_INDEX)  # incremental: the snapshot stays at the full build's generation
    snap = a.snapshot_path(DEFAULT_INDEX)
    assert snap.exists()
    a.add(DEFAULT_INDEX, faces(vecs[30:], prefix="late"))
    a.remove(DEFAULT_INDEX, [5])
    # A new process loads the snapshot (no rebuild) and applies what happened after it.
    b = open_gallery(tmp_path, "HNSW32")
    monkeypatch.setattr(
        index_mod.VectorIndex, "_rebuild", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt"))
    )
    idx = b.fresh(DEFAULT_INDEX)
    assert sorted(idx.labels) == [i for i in range(40) if i not in (0, 5)]
    assert idx.labels[35] == "late5" and idx.dead >= {0, 5}
    assert b.search(DEFAULT_INDEX, vecs[5:6], 1)[0][0].id != 5
    assert b.search(DEFAULT_INDEX, vecs[33:34], 1)[0][0].id == 33


@pytest.mark.parametrize("index_type", ["Flat", "IVF"])
def test_snapshots_of_flat_and_ivf(tmp_path, monkeypatch, index_type):
    import visionpack.gallery as G

    monkeypatch.setattr(G, "SNAPSHOT_MIN", 10)
    a = open_gallery(tmp_path, index_type)
    vecs = unit_vectors(50)
    a.add(DEFAULT_INDEX, faces(vecs))
    a.fresh(DEFAULT_INDEX)
    a.remove(DEFAULT_INDEX, [7])
    b = open_gallery(tmp_path, index_type)
    assert b.search(DEFAULT_INDEX, vecs[7:8], 1)[0][0].id != 7
    assert b.search(DEFAULT_INDEX, vecs[8:9], 1)[0][0].id == 8
    assert len(b.fresh(DEFAULT_INDEX)) == 49


def test_bad_or_future_snapshots_are_ignored(tmp_path, monkeypatch, caplog):
    import visionpack.gallery as G

    monkeypatch.setattr(G, "SNAPSHOT_MIN", 10)
    a = open_gallery(tmp_path)
    vecs = unit_vectors(20)
    a.add(DEFAULT_INDEX, faces(vecs))
    a.fresh(DEFAULT_INDEX)
    snap = a.snapshot_path(DEFAULT_INDEX)
    good = snap.read_bytes()
    snap.write_bytes(b"garbage")
    assert open_gallery(tmp_path).search(DEFAULT_INDEX, vecs[3:4], 1)[0][0].id == 3
    assert "ignoring index snapshot" in caplog.text
    # A snapshot from a later generation than the store (a database restored by hand).
    snap.write_bytes(good)
    with SqliteStore(db_path(tmp_path)).write() as c:
        c.execute("DELETE FROM faces WHERE id >= 10")
        c.execute("UPDATE indexes SET gen = 1")
    caplog.clear()
    g = open_gallery(tmp_path)
    assert len(g.fresh(DEFAULT_INDEX)) == 10 and "newer than the gallery" in caplog.text
    # Other configurations never read it (index type / metric / model are in its name).
    assert open_gallery(tmp_path, "HNSW32").snapshot_path(DEFAULT_INDEX) != snap
