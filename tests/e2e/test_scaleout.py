"""Three face servers behind HAProxy on one PostgreSQL gallery (issue 19 item 4), end to end.

Three install roots, each ``install.py install demo-face --gallery-store postgresql`` on its own
loopback address (127.0.0.2-4; tests/scaleout_lab.py says why not namespaces), one PostgreSQL
cluster (tests/postgres_cluster.py) whose database already holds a gallery at schema 1 (the
install migrates it and re-embeds its face), HAProxy in front with health checks on /ready.
The checks share that setup and run in order, each under 8 clients adding, removing and
searching through the balancer for a few seconds; after each, every row the clients were told
exists is in the database, no row exists that nobody added, and every node's search finds
every row:

0. trouble_shooting's gallery checks (DSN reachable, schema version, sync lag) pass on a server;
1. steady load;
2. kill -9 of one node's gunicorn master mid-load, then ``install.py start``: it catches up;
3. PostgreSQL stopped for 10 s mid-load: writes answer 336101, searches go on, /ready says so,
   everything resumes;
4. ``install.py upgrade`` of one node to a new package while the others serve.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_installer_fixtures import (  # noqa: E402,F401
    REPO,
    kill_leftovers,
    new_root,
    shared_runtime,
    source_tree,
    wheelhouse,
)
from test_upgrade_face_gallery import FACE_BUNDLES, bench_upgrade  # noqa: E402

from tests.postgres_cluster import free_port  # noqa: E402
from tests.scaleout_lab import (  # noqa: E402
    DEPLOY,
    ERR_GALLERY_UNAVAILABLE,
    GROUP,
    Ledger,
    Load,
    get,
    image_for,
    search,
    start_haproxy,
    wait_for,
)
from visionpack.gallery import pg_schema  # noqa: E402

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
LOAD_S = 4.0  # seconds of load per check: enough for every kind of request, small for CI
LEGACY = "legacy-person"


class Node:
    def __init__(self, root: Path, host: str, port: int) -> None:
        self.root, self.host, self.port = root, host, port

    def ready(self) -> bool:
        return get(self.host, self.port, "/ready")[0] == 200

    def master_pid(self) -> int:
        pidfiles = sorted(self.root.glob(f"{DEPLOY}/run/**/gunicorn.pid"), key=lambda p: p.stat().st_mtime)
        return int(pidfiles[-1].read_text().strip())


class Lab:
    def __init__(self, pg, dsn: str, nodes: list[Node], lb_port: int, top: Path) -> None:
        self.pg, self.dsn, self.nodes, self.lb_port, self.top = pg, dsn, nodes, lb_port, top
        self.ledger = Ledger()
        self.rounds = 0

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, password=self.pg.password_file.read_text().strip(), autocommit=True)

    def rows(self) -> dict[str, str]:
        with self.connect() as c:
            return {
                lab: model
                for lab, model in c.execute("SELECT label, model FROM gallery_faces WHERE index_key=%s", (GROUP,))
            }

    def load(self, mix: tuple[float, float] = (0.45, 0.6)) -> Load:
        self.rounds += 1
        # Rows of earlier rounds, so every client can search from its first request on (a client
        # whose adds are all refused, the database being down, still searches).
        known = sorted(self.ledger.must_exist() - self.ledger.faceless - {LEGACY})
        return Load("127.0.0.1", self.lb_port, self.ledger, 8, f"r{self.rounds}", self.rounds, mix, known)

    def check_consistent(self, sample: int | None = 40) -> dict[str, int]:
        """No lost and no phantom rows against the database; every node's search finds them."""
        led = self.ledger
        rows = set(self.rows())
        lost = led.must_exist() - rows
        phantom = rows - led.may_exist()
        assert not lost, f"acknowledged adds missing from the database: {sorted(lost)[:10]}"
        assert not phantom, f"rows nobody added (or whose removal was acknowledged): {sorted(phantom)[:10]}"
        # Every row a search can find (an add without a face is stored whole, but no search finds it).
        labels = sorted(rows - led.faceless - {LEGACY})
        assert len(labels) >= len(rows) // 2, f"most adds must have found a face: {len(led.faceless)} did not"
        if sample is not None:
            labels = labels[:: max(1, len(labels) // sample)]

        def missing_on(node: Node) -> list[str]:
            # Each node catches up by itself (LISTEN/NOTIFY): search again what is still missing
            # until a deadline, never a fixed sleep.
            pending, deadline = labels, time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                pending = [lab for lab in pending if search(node.host, node.port, lab) != lab]
            return pending

        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for node, missing in zip(self.nodes, pool.map(missing_on, self.nodes)):
                assert missing == [], f"{node.host}: searches miss {missing[:10]}"
        return {"rows": len(rows), "searched_per_node": len(labels), "faceless": len(rows & led.faceless)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, shared_runtime, pg_cluster):
    top = tmp_path_factory.mktemp("scaleout")
    bu = bench_upgrade()
    dsn = pg_cluster.database()
    password = pg_cluster.password_file.read_text().strip()
    # A database a release of schema 1 left: one index with one face of another feature model.
    with psycopg.connect(dsn, password=password, autocommit=True) as c:
        pg_schema.migrate(c, upto=1)
        c.execute("INSERT INTO gallery_indexes (key, created, gen, next_id) VALUES (%s, 0, 1, 1)", (GROUP,))
        import base64

        c.execute(
            "INSERT INTO gallery_faces VALUES (%s, 0, %s, %s, 'an-older-model', %s, 0, 1)",
            (GROUP, LEGACY, np.ones(128, np.float32).tobytes(), base64.b64decode(image_for(LEGACY))),
        )
    nodes: list[Node] = []
    haproxy = None
    try:
        for n, host in enumerate(HOSTS):
            (top / f"server{n}").mkdir()
            root = new_root(top / f"server{n}", shared_runtime)
            bu.license_root(root, top / f"vendor{n}")  # one license per server
            port = free_port(host)
            bu.installer(
                REPO, root, "install", DEPLOY, "--host", host, "--port", str(port), "--force",
                "--gallery-store", "postgresql", "--gallery-dsn", dsn,
                "--gallery-password-file", str(pg_cluster.password_file),
            )  # fmt: skip
            nodes.append(Node(root, host, port))
        lb_port = free_port()
        haproxy = start_haproxy(top, lb_port, [(n.host, n.port) for n in nodes])
        the_lab = Lab(pg_cluster, dsn, nodes, lb_port, top)
        assert wait_for(lambda: get("127.0.0.1", lb_port, "/ready")[0] == 200, 30)
        yield the_lab
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(30)
        for node in nodes:
            try:
                bu.installer(REPO, node.root, "stop", DEPLOY, timeout=120)
            finally:
                kill_leftovers(node.root)


def test_the_installs_migrated_the_database_and_reembedded_its_face(lab):
    with lab.connect() as c:
        assert pg_schema.current(c) == (pg_schema.SCHEMA_VERSION, 1)
    model = lab.rows()[LEGACY]
    assert model != "an-older-model"  # re-embedded once, by whichever server got its claim
    with lab.connect() as c:
        [(vector,)] = c.execute("SELECT vector FROM gallery_faces WHERE label=%s", (LEGACY,)).fetchall()
    assert bytes(vector) != np.ones(128, np.float32).tobytes()
    for node in lab.nodes:
        detail = get(node.host, node.port, "/ready")[1]  # this machine: the ops detail
        assert detail["gallery"]["store"] == "postgresql" and detail["gallery"]["listening"] is True
        assert lab.pg.password_file.read_text().strip() not in str(detail)
    lab.ledger.acked_add.add(LEGACY)


def test_trouble_shooting_checks_the_database_and_the_sync(lab):
    sys.path.insert(0, str(REPO / "trouble_shooting"))
    from vp_diag import discover, gallery_db
    from vp_diag.core import Context

    node = lab.nodes[0]
    ctx = Context(roots=[node.root], deploys=discover.load_deploys([node.root]), package=REPO,
                  diag_dir=REPO / "trouble_shooting")  # fmt: skip
    found = {r.name: r for r in gallery_db.checks(ctx)}
    assert found["gallery-database"].status == "PASS", found["gallery-database"]
    assert f"schema {pg_schema.SCHEMA_VERSION}" in found["gallery-database"].detail
    assert found["gallery-sync"].status == "PASS", found["gallery-sync"]
    assert lab.pg.password_file.read_text().strip() not in str([r.to_dict() for r in found.values()])


def test_steady_load_through_the_balancer_loses_nothing(lab):
    t0 = time.monotonic()
    led = lab.ledger
    with lab.load():
        # LOAD_S seconds, and at least one answered request of each kind (a deadline, not a sleep).
        wait_for(
            lambda: time.monotonic() - t0 > LOAD_S and all(led.successes(op) for op in ("add", "search", "remove")),
            120,
        )
    assert led.successes("add") > 0 and led.successes("search") > 0 and led.successes("remove") > 0, led.codes
    assert led.failures("add") == led.failures("search") == led.failures("remove") == 0, led.codes
    lab.check_consistent()


def test_a_node_killed_mid_load_restarts_and_catches_up(lab):
    bu = bench_upgrade()
    victim = lab.nodes[1]
    t0 = time.monotonic()
    with lab.load():
        wait_for(lambda: lab.ledger.successes("add", since=t0) >= 3, 60)
        os.kill(victim.master_pid(), signal.SIGKILL)
        assert wait_for(lambda: not victim.ready(), 30)
        down = time.monotonic()
        wait_for(lambda: lab.ledger.successes("add", since=down) >= 3, 60)  # the others serve
        bu.installer(REPO, victim.root, "start", DEPLOY, timeout=300)
        assert wait_for(victim.ready, 120)
        t1 = time.monotonic()
        wait_for(lambda: time.monotonic() - t1 > 1.0, 5)  # some load with every node back
    lab.check_consistent()


def test_postgresql_stopped_10s_mid_load(lab):
    led = lab.ledger
    t0 = time.monotonic()
    with lab.load():
        wait_for(lambda: led.successes("add", since=t0) >= 3, 60)
        lab.pg.stop("fast")
        down = time.monotonic()
        try:
            assert wait_for(
                lambda: all(
                    get(n.host, n.port, "/ready")[1].get("gallery", {}).get("listening") is False for n in lab.nodes
                ),
                30,
            )
            for n in lab.nodes:
                status, detail = get(n.host, n.port, "/ready")
                assert status == 200 and "unreachable" in detail["gallery"]["degraded"]  # still serving searches
            wait_for(lambda: time.monotonic() - down >= 10.0, 15)
        finally:
            lab.pg.start()
        up = time.monotonic()
        assert wait_for(lambda: led.successes("add", since=up) >= 3, 60), led.codes
    refused = [k for k in led.codes if k.startswith("add:503:") or k.startswith("add:200:336101")]
    assert led.failures("add", since=down + 1, until=up) > 0 and refused, led.codes  # writes failed cleanly...
    assert all(k.split(":")[2] in ("0", str(ERR_GALLERY_UNAVAILABLE)) for k in led.codes if k.startswith("add:")), (
        led.codes
    )  # ...with the documented code, nothing else
    assert led.successes("search", since=down + 1, until=up) > 0, led.codes  # searches went on
    assert led.failures("search", since=t0) == 0, led.codes
    for n in lab.nodes:
        assert wait_for(lambda n=n: get(n.host, n.port, "/ready")[1].get("gallery", {}).get("listening"), 30)
    lab.check_consistent()


def test_one_node_upgraded_while_the_others_serve(lab):
    bu = bench_upgrade()
    pkg = bu.update_package(lab.top / "pkg2", "9.1.0", FACE_BUNDLES)
    # The new package brings one more schema migration, additive (compat stays 1): the upgrade
    # migrates the shared database while the servers still on the old release keep serving.
    schema = pkg / "package" / "visionpack" / "gallery" / "pg_schema.py"
    text = schema.read_text()
    assert text.count("\n)\nSCHEMA_VERSION") == 1
    schema.write_text(
        text.replace(
            "\n)\nSCHEMA_VERSION",
            '\n    Migration(3, 1, "test", "ALTER TABLE gallery_faces ADD COLUMN note TEXT"),\n)\nSCHEMA_VERSION',
        )
    )
    node = lab.nodes[2]
    t0 = time.monotonic()
    # Mostly searches: the upgrade takes a minute or two, and every row is searched on every node after.
    with lab.load(mix=(0.1, 0.15)):
        wait_for(lambda: lab.ledger.successes("add", since=t0) >= 3, 60)
        bu.installer(pkg, node.root, "upgrade", DEPLOY, "--package", str(pkg), "--timeout", "300", timeout=900)
        t1 = time.monotonic()
        wait_for(lambda: time.monotonic() - t1 > 1.0, 5)
    led = lab.ledger
    assert sum(led.failures(op, since=t0) for op in ("add", "remove", "search")) == 0, led.codes
    release = (node.root / DEPLOY / "current").resolve().name
    assert release == "9.1.0"
    with lab.connect() as c:
        assert pg_schema.current(c) == (pg_schema.SCHEMA_VERSION + 1, 1)  # migrated by the upgrade
    assert (node.root / DEPLOY / "current" / "config.yml").read_text().count("postgresql") == 1
    summary = lab.check_consistent(sample=None)  # the last check: every row on every node
    print(f"scale-out ledger: {summary}, outcomes {led.codes}")
