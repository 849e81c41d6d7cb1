"""The PostgreSQL gallery store on a real PostgreSQL (tests/postgres_cluster.py): the same answers as
the SQLite store for the same calls, versioned migrations, LISTEN/NOTIFY sync with its generation
check, coordinated re-embedding, the database going away and coming back, and the password kept out
of the DSN and of every message."""

from __future__ import annotations

import os
import threading
import time

import psycopg
import pytest

from tests.postgres_cluster import free_port
from tests.unit.gallery.test_gallery import DIM, faces, unit_vectors
from visionpack.config import GalleryConfig
from visionpack.errors import ConfigInvalid, GalleryUnavailable, InvalidArgument, ModelInvalid, VisionpackError
from visionpack.gallery import DEFAULT_INDEX, Gallery, IndexParams, NewFace, open_store, pg_schema
from visionpack.gallery.postgres_store import PostgresStore
from visionpack.gallery.sqlite_store import SqliteStore, db_path
from visionpack.gallery.store_factory import check_store


def wait_for(what, timeout=20.0):
    """Poll ``what`` until it is truthy (a deadline, never a fixed sleep); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@pytest.fixture()
def pg(pg_cluster):
    """A new database and a function opening stores on it (closed at the end)."""
    dsn = pg_cluster.database()
    opened = []

    def open_(**kw):
        s = PostgresStore(dsn, password_file=str(pg_cluster.password_file), **kw)
        opened.append(s)
        return s

    open_.dsn = dsn
    yield open_
    for s in opened:
        s.close()


def outcome(call):
    try:
        return call()
    except VisionpackError as err:
        return type(err).__name__
    except Exception:  # noqa: BLE001  (the SQLite store answers a duplicate key with sqlite3's own error)
        return "refused"


def transcript(s, tmp_path):
    """Every protocol call on ``s``, with what it answered (times left out: they differ)."""
    out = []
    s.ensure_index(DEFAULT_INDEX)
    s.ensure_index(DEFAULT_INDEX)
    out.append(s.add(DEFAULT_INDEX, [NewFace(f"p{i % 3}", v, b"c%d" % i) for i, v in enumerate(unit_vectors(6))], "m1"))
    out.append(s.add("team", faces(unit_vectors(2, seed=1)), "m1", create=True, limit=5))
    # Refused either way (SQLite says so with sqlite3's IntegrityError, PostgreSQL as InvalidArgument).
    out.append(isinstance(outcome(lambda: s.add("team", faces(unit_vectors(1)), "m1", create=True)), str))
    out.append(s.id_map("team"))
    out.append(s.remove(DEFAULT_INDEX, [3, 0, 99, 3]))
    out.append(s.remove_label(DEFAULT_INDEX, "p1"))
    out.append(s.remove_label(DEFAULT_INDEX, "nobody"))
    out.append(s.generation(DEFAULT_INDEX))
    for since in (None, 1, 2, s.generation(DEFAULT_INDEX)):
        ch = s.changes(DEFAULT_INDEX, since, "m1", DIM)
        out.append((ch.gen, ch.full, ch.ids.tolist(), ch.labels, ch.vectors.round(5).tolist(), sorted(ch.removed)))
    out.append(s.id_map(DEFAULT_INDEX))
    out.append([(t, [(p["id"], p["label"]) for p in page]) for t, page in [s.list_faces(DEFAULT_INDEX, "p2")]])
    total, page = s.list_faces(DEFAULT_INDEX, start=1, length=1)
    out.append((total, [p["id"] for p in page]))
    out.append([{k: v for k, v in st.items() if k != "created"} for st in s.stats()])
    out.append(s.crop(DEFAULT_INDEX, 2))
    out.append(outcome(lambda: s.crop(DEFAULT_INDEX, 0)))
    # Re-embedding: rows of another model, found, replaced only while still stale.
    s.add(DEFAULT_INDEX, faces(unit_vectors(2, seed=4), prefix="old"), "m0")
    out.append(s.count_stale("m1"))
    stale = s.stale("m1", 10)
    out.append(sorted((r.key, r.id, r.model, r.crop) for r in stale))
    out.append(s.replace_vectors(DEFAULT_INDEX, [(r.id, unit_vectors(1, seed=r.id)[0]) for r in stale], "m1", "m0"))
    out.append(s.replace_vectors(DEFAULT_INDEX, [(r.id, unit_vectors(1)[0]) for r in stale], "m1", "m0"))
    out.append((s.count_stale("m1"), s.changes(DEFAULT_INDEX, None, "m1", DIM).ids.tolist()))
    out.append(outcome(lambda: s.changes(DEFAULT_INDEX, None, "m1", DIM + 1)))
    # Drop and recreate: the new index starts above every generation the old one reached.
    before = s.generation("team")
    out.append(s.drop_index("team"))
    out.append(outcome(lambda: s.generation("team")))
    s.ensure_index("team")
    out.append(s.generation("team") > before)
    out.append(s.changes("team", before, "m1", DIM).full)
    out.append(s.drop_index(DEFAULT_INDEX, recreate=True))
    out.append((s.index_keys(), s.id_map(DEFAULT_INDEX)))
    out.append(outcome(lambda: s.ensure_index("third", limit=2)))
    for call in (
        lambda: s.add("nope", faces(unit_vectors(1)), "m1"),
        lambda: s.remove("nope", [1]),
        lambda: s.remove_label("nope", "x"),
        lambda: s.id_map("nope"),
        lambda: s.list_faces("nope"),
        lambda: s.changes("nope", None, "m1", DIM),
        lambda: s.drop_index("nope"),
        lambda: s.generation("nope"),
        lambda: s.add(DEFAULT_INDEX, [NewFace(" ", unit_vectors(1)[0], b"")], "m1"),
        lambda: s.ensure_index("a\tb"),
    ):
        out.append(outcome(call))
    # Export, then import into the same store with and without replace.
    s.add("team", faces(unit_vectors(3, seed=8), prefix="t"), "m1")
    path = tmp_path / f"export-{type(s).__name__}.sqlite3"
    s.export(path)
    out.append(outcome(lambda: s.import_file(path)))
    out.append(s.import_file(path, replace=True))
    out.append((s.id_map("team"), s.changes("team", None, "m1", DIM).vectors.round(5).tolist()))
    bad = tmp_path / "not-an-export"
    bad.write_bytes(b"hello")
    out.append(outcome(lambda: s.import_file(bad)))
    return out


def test_the_same_calls_answer_the_same_on_sqlite_and_postgresql(pg, tmp_path):
    sqlite = SqliteStore(db_path(tmp_path / "sqlite"))
    expected = transcript(sqlite, tmp_path)
    got = transcript(pg(), tmp_path)
    for n, (a, b) in enumerate(zip(expected, got)):
        assert a == b, f"call {n}: sqlite {a!r} != postgresql {b!r}"
    assert len(expected) == len(got)


def test_exports_move_between_the_two_stores(pg, tmp_path):
    src = pg()
    src.add("people", [NewFace(f"p{i}", v, b"png%d" % i) for i, v in enumerate(unit_vectors(5))], "m1", create=True)
    src.remove("people", [1])
    src.export(tmp_path / "pg.sqlite3")
    sqlite = SqliteStore(db_path(tmp_path / "s"))
    assert sqlite.import_file(tmp_path / "pg.sqlite3") == {"people": 4}
    assert sqlite.id_map("people") == src.id_map("people") == {0: "p0", 2: "p2", 3: "p3", 4: "p4"}
    sqlite.export(tmp_path / "back.sqlite3")
    dest = pg()
    dest.drop_index("people")
    assert dest.import_file(tmp_path / "back.sqlite3") == {"people": 4}
    assert dest.crop("people", 3) == b"png3"
    # Ids are never reused after an import: the next id continues where the source stopped.
    assert dest.add("people", faces(unit_vectors(1)), "m1") == [5]


def test_config_names_the_store_and_the_password_never_shows(pg_cluster, pg, tmp_path):
    settings = GalleryConfig("postgresql", pg.dsn, str(pg_cluster.password_file))
    store = open_store(settings, tmp_path)
    try:
        assert isinstance(store, PostgresStore)
        state = store.sync_state()
        assert state["store"] == "postgresql" and pg_cluster.password_file.read_text().strip() not in repr(state)
    finally:
        store.close()
    secret = pg_cluster.password_file.read_text().strip()
    for bad, why in (
        (GalleryConfig("postgresql", f"{pg.dsn} password={secret}"), "must not hold the password"),
        (GalleryConfig("postgresql", f"postgresql://vp:{secret}@127.0.0.1/x"), "must not hold the password"),
        (GalleryConfig("postgresql", ""), "needs gallery.dsn"),
        (GalleryConfig("postgresql", "host=127.0.0.1 = broken"), "not a libpq connection string"),
        (GalleryConfig("postgresql", pg.dsn, str(tmp_path / "missing")), "cannot read it"),
    ):
        with pytest.raises(ConfigInvalid, match=why) as err:
            open_store(bad, tmp_path)
        assert secret not in str(err.value)
    # Without the password (no file, no PGPASSWORD) the server refuses: unavailable, no secret shown.
    with pytest.raises(GalleryUnavailable) as err:
        open_store(GalleryConfig("postgresql", pg.dsn), tmp_path)
    assert secret not in str(err.value) and "127.0.0.1" in err.value.detail
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    with pytest.raises(GalleryUnavailable):
        open_store(GalleryConfig("postgresql", pg.dsn, str(wrong)), tmp_path)


def test_migrations_bring_an_older_database_up_and_keep_its_rows(pg_cluster, pg):
    with psycopg.connect(pg.dsn, password=pg_cluster.password_file.read_text().strip(), autocommit=True) as conn:
        assert pg_schema.migrate(conn, upto=1) == [1]
        assert pg_schema.current(conn) == (1, 1)
        conn.execute("INSERT INTO gallery_indexes (key, created, gen, next_id) VALUES ('old', 0, 3, 1)")
        conn.execute(
            "INSERT INTO gallery_faces VALUES ('old', 0, 'kept', %s, 'm1', 'crop', 0, 3)",
            (unit_vectors(1)[0].tobytes(),),
        )
        store = pg()  # what the installer's start of a release does: open, which migrates
        assert pg_schema.current(conn) == (pg_schema.SCHEMA_VERSION, 1)
        assert [r[0] for r in conn.execute("SELECT version FROM gallery_migrations ORDER BY version")] == [1, 2]
        assert store.id_map("old") == {0: "kept"} and store.add("old", faces(unit_vectors(1)), "m1") == [1]
        assert pg().migrate() == []  # a second install: nothing to do
        # A database a newer release made incompatible is refused, not damaged.
        conn.execute("UPDATE gallery_schema SET version = 9, compat = 9")
        with pytest.raises(ModelInvalid, match="schema 9.*reading schema 9 or newer; this release reads 2"):
            pg()
        conn.execute("UPDATE gallery_schema SET version = 3, compat = 1")
        assert pg().migrate() == []  # newer but compatible (an additive migration): serves on


def test_a_write_reaches_another_servers_next_search_through_notify(pg):
    a = Gallery.over(pg(), IndexParams(), "m1", DIM)
    c = Gallery.over(pg(), IndexParams(), "m1", DIM)
    vecs = unit_vectors(4)
    assert c.search(DEFAULT_INDEX, vecs[:1], 1) == [[]]
    assert c.store.sync_state()["listening"] or wait_for(lambda: c.store.sync_state()["listening"])
    t0 = time.monotonic()
    a.add(DEFAULT_INDEX, faces(vecs))
    assert wait_for(lambda: c.search(DEFAULT_INDEX, vecs[2:3], 1)[0])[0].id == 2
    assert time.monotonic() - t0 < 1.0  # the target (notification, not the periodic check)
    a.remove(DEFAULT_INDEX, [2])
    assert wait_for(lambda: c.search(DEFAULT_INDEX, vecs[2:3], 1)[0][0].id != 2)
    a.drop(DEFAULT_INDEX)
    assert wait_for(lambda: outcome(lambda: c.search(DEFAULT_INDEX, vecs[:1], 1)) == "InvalidArgument")


def test_a_missed_notification_is_caught_by_the_generation_check(pg_cluster, pg):
    reader = pg(feed_check_s=0.2)
    g = Gallery.over(reader, IndexParams(), "m1", DIM)
    g.fresh(DEFAULT_INDEX)
    assert wait_for(lambda: reader.sync_state()["listening"])
    gen = reader.generation(DEFAULT_INDEX)
    # A write whose notification never comes (as if sent while the listener reconnected).
    with psycopg.connect(pg.dsn, password=pg_cluster.password_file.read_text().strip(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gallery_faces VALUES ('default', 0, 'silent', %s, 'm1', '', 0, %s)",
            (unit_vectors(1)[0].tobytes(), gen + 1),
        )
        conn.execute("UPDATE gallery_indexes SET gen = %s, next_id = 1 WHERE key = 'default'", (gen + 1,))
    assert wait_for(lambda: reader.generation(DEFAULT_INDEX) == gen + 1, timeout=5)
    assert g.search(DEFAULT_INDEX, unit_vectors(1), 1)[0][0].label == "silent"


def test_two_servers_reembedding_at_once_never_take_the_same_rows(pg):
    old = pg()
    old.add(
        DEFAULT_INDEX, [NewFace(f"p{i}", v, bytes([i])) for i, v in enumerate(unit_vectors(40))], "old", create=True
    )
    servers = [Gallery.over(pg(), IndexParams(), "new", DIM) for _ in range(2)]
    embedded: list[list[int]] = [[], []]
    target = unit_vectors(40, seed=3)
    start = threading.Barrier(2)

    def run(n):
        def embed(crops):
            embedded[n].extend(c[0] for c in crops)
            time.sleep(0.01)  # (the other server's claims land meanwhile: the race under test)
            return target[[c[0] for c in crops]]

        start.wait()
        servers[n].migrate(embed, batch=4)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not set(embedded[0]) & set(embedded[1])  # no row embedded twice
    assert sorted(embedded[0] + embedded[1]) == list(range(40))
    assert servers[0].stale_count() == 0
    # A search never mixes models: every row searched is the new model's vector.
    idx = servers[1].fresh(DEFAULT_INDEX)
    assert len(idx) == 40 and servers[1].search(DEFAULT_INDEX, target[7:8], 1)[0][0].id == 7


def test_the_database_going_away_and_coming_back(pg_cluster, pg):
    store = pg(feed_check_s=0.2)
    g = Gallery.over(store, IndexParams(), "m1", DIM)
    vecs = unit_vectors(6)
    g.add(DEFAULT_INDEX, faces(vecs[:3]))
    assert g.search(DEFAULT_INDEX, vecs[1:2], 1)[0][0].id == 1
    assert wait_for(lambda: store.sync_state()["listening"])
    pg_cluster.stop("fast")
    try:
        assert wait_for(lambda: not store.sync_state()["listening"])
        state = store.sync_state()
        assert state["error"] and state["synced_s_ago"] is not None
        # Writes fail with the documented error; nothing is written.
        for call in (
            lambda: g.add(DEFAULT_INDEX, faces(vecs[3:])),
            lambda: g.remove(DEFAULT_INDEX, [0]),
            lambda: g.build(faces(vecs[3:])),
        ):
            with pytest.raises(GalleryUnavailable, match="unreachable.*nothing was written") as err:
                call()
            assert err.value.easydl_code == 336101 and err.value.http_status == 503
        # Searches answer from the last synced index.
        assert g.search(DEFAULT_INDEX, vecs[1:2], 1)[0][0].id == 1
        # An index this process never saw cannot be searched: unavailable, not "unknown".
        with pytest.raises(GalleryUnavailable):
            g.search("never-seen", vecs[:1], 1)
    finally:
        pg_cluster.start()
    # It reconnects by itself: writes work at once, the listener comes back.
    assert g.add(DEFAULT_INDEX, faces(vecs[3:])) == [3, 4, 5]
    assert wait_for(lambda: store.sync_state()["listening"])
    assert g.id_map(DEFAULT_INDEX) == {0: "p0", 1: "p1", 2: "p2", 3: "p0", 4: "p1", 5: "p2"}
    assert g.search(DEFAULT_INDEX, vecs[4:5], 1)[0][0].id == 4


def test_a_search_announced_but_not_fetched_before_the_database_went_away(pg_cluster, pg):
    writer, reader = pg(), pg()
    g = Gallery.over(reader, IndexParams(), "m1", DIM)
    vecs = unit_vectors(2)
    writer.add(DEFAULT_INDEX, faces(vecs[:1]), "m1")
    assert wait_for(lambda: len(g.fresh(DEFAULT_INDEX)) == 1)
    pg_cluster.stop("fast")
    try:
        reader.feed.saw(DEFAULT_INDEX, reader.generation(DEFAULT_INDEX) + 1)  # heard, not yet read
        assert g.search(DEFAULT_INDEX, vecs[:1], 1)[0][0].id == 0  # the last synced index answers
    finally:
        pg_cluster.start()


def test_concurrent_writers_on_two_servers_get_unique_increasing_ids(pg):
    stores = [pg(), pg()]
    stores[0].ensure_index(DEFAULT_INDEX)
    got: list[list[int]] = [[], []]

    def run(n):
        for i in range(25):
            got[n] += stores[n].add(DEFAULT_INDEX, faces(unit_vectors(2, seed=i)), "m1")
            if i % 5 == 4:
                stores[n].remove(DEFAULT_INDEX, got[n][-1:])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got[0] + got[1]) == list(range(100))
    assert all(a < b for ids in got for a, b in zip(ids, ids[1:]))
    assert len(stores[1].id_map(DEFAULT_INDEX)) == 90


def test_an_unreachable_server_at_open_is_unavailable(tmp_path):
    with pytest.raises(GalleryUnavailable, match=r"127\.0\.0\.1:\d+/nodb"):
        PostgresStore(f"host=127.0.0.1 port={free_port()} dbname=nodb user=vp")
    with pytest.raises(InvalidArgument):
        SqliteStore(db_path(tmp_path)).remove("nope", [1])


def test_trouble_shootings_check_never_migrates_and_never_shows_the_password(pg_cluster, pg, tmp_path):
    secret = pg_cluster.password_file.read_text().strip()
    settings = GalleryConfig("postgresql", pg.dsn, str(pg_cluster.password_file))
    fresh = check_store(settings)
    assert fresh["reachable"] is True and fresh["schema"] == 0 and "faces" not in fresh  # not created by a check
    pg().add(DEFAULT_INDEX, faces(unit_vectors(2)), "m1", create=True)
    assert check_store(settings) == {
        "store": "postgresql",
        "reads": pg_schema.SCHEMA_VERSION,
        "reachable": True,
        "database": pg.dsn.split()[0].split("=")[1] + f":{pg_cluster.port}/" + pg.dsn.split("dbname=")[1].split()[0],
        "schema": pg_schema.SCHEMA_VERSION,
        "compat": 1,
        "faces": 2,
    }
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    denied = check_store(GalleryConfig("postgresql", pg.dsn, str(wrong)))
    assert denied["reachable"] is False and "password authentication failed" in denied["error"]
    assert secret not in str(denied)
    gone = check_store(GalleryConfig("postgresql", f"host=127.0.0.1 port={free_port()} dbname=x user=vp"))
    assert gone["reachable"] is False and gone["error"].startswith("OperationalError")
    assert check_store(GalleryConfig("postgresql", f"{pg.dsn} password={secret}"))["error"].startswith(
        "gallery.dsn must not hold the password"
    )
    assert check_store(GalleryConfig()) == {"store": "sqlite"}


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(pg):
    store = pg()
    store.add(DEFAULT_INDEX, faces(unit_vectors(1)), "m1", create=True)
    pid = os.fork()
    if pid == 0:  # what gunicorn does to a store opened before its fork
        try:
            ok = store.id_map(DEFAULT_INDEX) == {0: "p0"} and store.add(DEFAULT_INDEX, faces(unit_vectors(1)), "m1")
        except BaseException:  # noqa: BLE001  (the child reports by its exit status only)
            ok = False
        os._exit(0 if ok == [1] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.id_map(DEFAULT_INDEX) == {0: "p0", 1: "p0"}  # the parent's session survived the child


def test_the_password_may_come_from_libpqs_environment(pg_cluster, pg, monkeypatch, tmp_path):
    monkeypatch.setenv("PGPASSWORD", pg_cluster.password_file.read_text().strip())
    store = open_store(GalleryConfig("postgresql", pg.dsn), tmp_path)  # no password_file
    try:
        assert store.index_keys() == []
    finally:
        store.close()
