"""Several processes on one gallery: nothing lost, ids unique, readers current; kill -9 loses nothing
committed; a store survives a fork by reopening its connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.paths import PACKAGE
from tests.unit.gallery.test_gallery import faces, open_gallery, unit_vectors
from visionpack.gallery import DEFAULT_INDEX, Gallery, IndexParams
from visionpack.gallery.sqlite_store import SqliteStore, db_path

DIM = 8

# A worker process: adds N faces one transaction at a time, removing every third one it added.
WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {package!r})
    from visionpack.gallery import Gallery, IndexParams, NewFace
    data_dir, name, n, index_type = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    g = Gallery.open(data_dir, IndexParams(index_type), "m", {dim})
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    mine = []
    for i in range(n):
        v = rng.normal(size={dim}).astype(np.float32)
        [fid] = g.add("default", [NewFace(f"{{name}}-{{i}}", v / np.linalg.norm(v), b"")])
        mine.append(fid)
        if i % 3 == 2:
            assert g.remove("default", [mine[-2]]) == [mine[-2]]
        # A search in between: the index must keep up with everybody's writes.
        g.search("default", v[None], 1)
    print(" ".join(map(str, mine)), flush=True)
""")

# A writer that commits batches forever and reports each commit after it returned.
BATCHER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {package!r})
    from visionpack.gallery import Gallery, IndexParams, NewFace
    g = Gallery.open(sys.argv[1], IndexParams(), "m", {dim})
    b = 0
    while True:
        faces = [NewFace(f"b{{b}}-{{i}}", np.full({dim}, b + 1, np.float32), bytes(20000)) for i in range(25)]
        ids = g.add("default", faces)
        print(b, ids[0], ids[-1], flush=True)
        b += 1
""")


def spawn(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script.format(package=str(PACKAGE), dim=DIM), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_writers_lose_nothing_and_ids_are_unique(tmp_path):
    Gallery.open(tmp_path, IndexParams(), "m", DIM)  # create the database once
    procs = [spawn(WORKER, tmp_path, f"w{i}", 30, ("Flat", "HNSW32", "IVF", "Flat")[i]) for i in range(4)]
    added = {}
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        added[f"w{i}"] = [int(x) for x in out.split()]
    all_ids = [fid for ids in added.values() for fid in ids]
    assert len(all_ids) == 120 and len(set(all_ids)) == 120
    # Every third add removed the one before it: 10 of each worker's 30 are gone.
    expect = {}
    for name, ids in added.items():
        removed = {ids[i - 1] for i in range(2, 30, 3)}
        expect.update({fid: f"{name}-{i}" for i, fid in enumerate(ids) if fid not in removed})
    store = SqliteStore(db_path(tmp_path))
    assert store.id_map(DEFAULT_INDEX) == expect
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # A fresh reader and a reader that followed along incrementally agree.
    for index_type in ("Flat", "IVF", "HNSW32"):
        g = Gallery.open(tmp_path, IndexParams(index_type), "m", DIM)
        assert g.fresh(DEFAULT_INDEX).labels == expect


def test_kill_9_mid_batch_loses_no_committed_row(tmp_path):
    Gallery.open(tmp_path, IndexParams(), "m", DIM)
    p = spawn(BATCHER, tmp_path)
    committed = []
    deadline = time.monotonic() + 120
    while len(committed) < 6 and time.monotonic() < deadline:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        committed.append(tuple(int(x) for x in line.split()))
    # Let it get into the next transaction, then kill it without warning.
    time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    store = SqliteStore(db_path(tmp_path))
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    id_map = store.id_map(DEFAULT_INDEX)
    for b, first, last in committed:
        for fid in range(first, last + 1):
            assert id_map[fid] == f"b{b}-{fid - first}"
    # Transactions are all or nothing: whole batches of 25, never a torn one.
    assert len(id_map) % 25 == 0 and len(id_map) >= 25 * len(committed)
    g = Gallery.open(tmp_path, IndexParams(), "m", DIM)
    assert len(g.fresh(DEFAULT_INDEX)) == len(id_map)  # and the index is rebuilt from it
    # The writer's lock died with it: the next writer proceeds at once.
    t0 = time.monotonic()
    g.add(DEFAULT_INDEX, [])
    assert time.monotonic() - t0 < 5


def test_store_survives_a_fork_by_reopening(tmp_path):
    import os

    g = open_gallery(tmp_path)
    g.add(DEFAULT_INDEX, faces(unit_vectors(1)))
    pid = os.fork()
    if pid == 0:  # child: the inherited connection must not be used; a new one is opened
        try:
            g.add(DEFAULT_INDEX, faces(unit_vectors(1, seed=4), prefix="child"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert g.id_map(DEFAULT_INDEX) == {0: "p0", 1: "child0"}
