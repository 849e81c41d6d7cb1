"""Scale-out costs: the gallery stores alone, then 1 vs 3 face servers behind HAProxy; JSON on stdout.

    .venv/bin/python benchmarks/bench_scaleout.py                          # both parts
    .venv/bin/python benchmarks/bench_scaleout.py --part store --sizes 10000,100000
    .venv/bin/python benchmarks/bench_scaleout.py --part cluster --runtime-from DIR --seconds 10

**store**: SQLite vs PostgreSQL (a private cluster, tests/postgres_cluster.py) with 128-d vectors
and 2 KB crops: single-face adds per second (one transaction each, as the API does), bulk faces
per second (1000 per transaction, to fill), and at each size the *sync time* a server pays:
a fresh process loading the whole index (read + faiss Flat build) and catching up one change.

**cluster**: three ``demo-face`` installs on 127.0.0.2-4 sharing one PostgreSQL gallery
(tests/scaleout_lab.py), HAProxy in front of one of them, then of all three. Per layout:
search req/s and add req/s under 8 clients, and the servers' CPU seconds per request (every
gunicorn process of every server, from /proc), whose 3-node/1-node ratio is the cost of
coordination (on 2 shared cores req/s cannot grow with nodes). Then the propagation delay
under the 8-client mixed load: add through server A, search on server C until found
(each sample includes one search's latency, so it is an upper bound).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "package")]

from tests.postgres_cluster import PgCluster, free_port  # noqa: E402
from tests.scaleout_lab import (  # noqa: E402
    DEPLOY,
    GROUP,
    Ledger,
    Load,
    get,
    post,
    search,
    start_haproxy,
    wait_for,
)
from visionpack.gallery import Gallery, IndexParams, NewFace  # noqa: E402
from visionpack.gallery.postgres_store import PostgresStore  # noqa: E402
from visionpack.gallery.sqlite_store import SqliteStore  # noqa: E402

DIM = 128
CROP = bytes(2048)
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def log(msg: str) -> None:
    print(f"[bench_scaleout {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


# --- the stores alone -------------------------------------------------------------------------


def store_part(sizes: list[int], work: Path, pg: PgCluster) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dbname = "bench_" + str(os.getpid())
    pg.database(dbname)
    openers = {
        "sqlite": lambda: SqliteStore(work / "sqlite" / "g.sqlite3"),
        "postgresql": lambda: PostgresStore(pg.dsn(dbname), password_file=str(pg.password_file)),
    }
    for kind, open_store in openers.items():
        store = open_store()
        store.ensure_index("k")
        one = vectors(300, 1)
        t0 = time.perf_counter()
        for i, v in enumerate(one):
            store.add("k", [NewFace(f"s{i}", v, CROP)], "m")
        add_s = 300 / (time.perf_counter() - t0)
        rows: dict[str, Any] = {"add_per_s": round(add_s, 1), "sizes": {}}
        have, bulk_s, bulk_n = 300, 0.0, 0
        for size in sizes:
            while have < size:
                n = min(1000, size - have)
                batch = [NewFace(f"b{have + i}", v, CROP) for i, v in enumerate(vectors(n, have))]
                t0 = time.perf_counter()
                store.add("k", batch, "m")
                bulk_s += time.perf_counter() - t0
                bulk_n, have = bulk_n + n, have + n
            reader_store = open_store()
            reader = Gallery.over(reader_store, IndexParams("Flat"), "m", DIM)
            t0 = time.perf_counter()
            reader.fresh("k")
            full = time.perf_counter() - t0
            # One-row catch-ups, the median of 5: the first after a full build also pays faiss
            # growing its vector storage (a copy of the whole index), the rest do not.
            catch_up = []
            for j in range(5):
                gen = store.add("k", [NewFace(f"late{j}", vectors(1, 9 + j)[0], CROP)], "m")
                want = store.generation("k")
                wait_for(lambda rs=reader_store, w=want: rs.generation("k") == w, 10, 0.005)  # PG: the notification
                t0 = time.perf_counter()
                idx = reader.fresh("k")
                catch_up.append(time.perf_counter() - t0)
                assert gen[0] in idx.labels
            incremental = statistics.median(catch_up)
            have += 5
            rows["sizes"][str(size)] = {
                "full_sync_s": round(full, 3),
                "incremental_sync_ms": round(incremental * 1e3, 2),
            }
            reader_store.close()
            log(f"{kind} {size}: {rows['sizes'][str(size)]}")
        rows["bulk_faces_per_s"] = round(bulk_n / bulk_s, 1) if bulk_s else None
        rows["notify_ms"] = notify_delay(store, open_store) if kind == "postgresql" else None
        store.close()
        out[kind] = rows
    out["pg_over_sqlite_add"] = round(out["postgresql"]["add_per_s"] / out["sqlite"]["add_per_s"], 3)
    return out


def notify_delay(writer: Any, open_store: Any, samples: int = 50) -> dict[str, Any]:
    """From a write's commit on one store to another store's feed knowing its generation (the
    LISTEN/NOTIFY path alone, no search): p50/p99 over ``samples`` single-face adds."""
    reader = open_store()
    reader.generation("k")  # starts its listener
    wait_for(lambda: reader.sync_state()["listening"], 10, 0.005)
    delays = []
    for i in range(samples):
        [fid] = writer.add("k", [NewFace(f"n{i}", vectors(1, i)[0], CROP)], "m")
        t0 = time.perf_counter()
        want = writer.generation("k")
        wait_for(lambda w=want: reader.feed.known("k") == w, 10, 0.0005)
        delays.append(time.perf_counter() - t0)
    reader.close()
    return {"p50": pct(delays, 0.5), "p99": pct(delays, 0.99)}


# --- 1 vs 3 servers ---------------------------------------------------------------------------


def bench_upgrade() -> Any:
    spec = importlib.util.spec_from_file_location("bench_upgrade", REPO / "benchmarks" / "bench_upgrade.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cached_runtime(bu: Any) -> Path:
    """A runtime built once by the installer, where the service user can reach it (not ~root)."""
    cache = Path(f"/var/tmp/visionpack-bench-{os.getuid()}")
    if not list(cache.glob(".runtime/*/bin/gunicorn")):
        cache.mkdir(mode=0o755, exist_ok=True)
        log(f"building the runtime once in {cache} (offline, from original/wheels)")
        args = ("--stopped", "--force", "--host", "127.0.0.1", "--port", str(free_port()))
        bu.installer(REPO, cache, "install", DEPLOY, *args)
        bu.installer(REPO, cache, "remove", DEPLOY, "--purge")
    return cache / ".runtime"


def cpu_seconds(roots: list[Path]) -> float:
    """utime + stime of every process whose command line names one of ``roots`` (the servers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if not any(str(r) in cmd for r in roots):
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / tick


def phase(port: int, roots: list[Path], seconds: float, mix: tuple[float, float], known: list[str], tag: str) -> dict:
    led = Ledger()
    cpu0, t0 = cpu_seconds(roots), time.monotonic()
    with Load("127.0.0.1", port, led, clients=8, tag=tag, mix=mix, known=known):
        wait_for(lambda: time.monotonic() - t0 >= seconds, seconds + 5)
    wall, cpu = time.monotonic() - t0, cpu_seconds(roots) - cpu0
    done = sum(led.successes(op) for op in ("add", "search", "remove"))
    lat = [s for _, _, s, ok in led.ops if ok]
    return {
        "requests_per_s": round(done / wall, 2),
        "failed": sum(led.failures(op) for op in ("add", "search", "remove")),
        "cpu_s_per_request": round(cpu / done, 4) if done else None,
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "labels": sorted(led.acked_add),
    }


def propagation(nodes: list[tuple[str, int]], lb: int, roots: list[Path], samples: int) -> dict[str, Any]:
    """Add on node A, search on node C back to back until one finds it, under the 8-client load.

    ``visible_ms``: from A's acknowledgement to the start of the first search on C that found the
    face (C checks its index early in that request); ``found_ms``: to that search's answer (an
    upper bound that includes one search under load)."""
    (a_host, a_port), (c_host, c_port) = nodes[0], nodes[-1]
    visible: list[float] = []
    found: list[float] = []
    led = Ledger()
    with Load("127.0.0.1", lb, led, clients=8, tag="prop-load"):
        for i in range(samples):
            label = f"probe-{i}"
            status, body = post(a_host, a_port, f"/{DEPLOY}/FaceGallery/add", {**_add(label)})
            if status != 200 or "error_code" in body:
                continue
            acked = time.monotonic()
            while time.monotonic() - acked < 30:
                start = time.monotonic()
                if search(c_host, c_port, label) == label:
                    visible.append(start - acked)
                    found.append(time.monotonic() - acked)
                    break
    return {
        "samples": len(visible),
        "visible_p50_ms": pct(visible, 0.5),
        "visible_p99_ms": pct(visible, 0.99),
        "found_p50_ms": pct(found, 0.5),
        "found_p99_ms": pct(found, 0.99),
        "search_p50_ms_under_load": pct([s for _, o, s, ok in led.ops if o == "search" and ok], 0.5),
    }


def _add(label: str) -> dict[str, Any]:
    from tests.scaleout_lab import image_for

    return {"image": image_for(label), "group_id": GROUP, "user_id": label}


def cluster_part(work: Path, pg: PgCluster, runtime_from: Path | None, seconds: float, samples: int) -> dict:
    bu = bench_upgrade()
    dsn = pg.database("bench_cluster_" + str(os.getpid()))
    runtime = (runtime_from or cached_runtime(bu)).resolve()
    nodes: list[tuple[Path, str, int]] = []
    proxies = []
    try:
        for n, host in enumerate(HOSTS):
            root = work / f"server{n}" / "root"
            root.mkdir(parents=True)
            os.symlink(runtime, root / ".runtime")
            bu.license_root(root, work / f"vendor{n}")
            port = free_port(host)
            log(f"installing {DEPLOY} server {n} on {host}:{port}")
            bu.installer(
                REPO, root, "install", DEPLOY, "--host", host, "--port", str(port), "--force",
                "--gallery-store", "postgresql", "--gallery-dsn", dsn, "--gallery-password-file", str(pg.password_file),
            )  # fmt: skip
            nodes.append((root, host, port))
        roots = [r for r, _, _ in nodes]
        # Searchable labels first (search-only load needs them), through server A.
        known = [f"seed-{i}" for i in range(16)]
        for label in known:
            post(nodes[0][1], nodes[0][2], f"/{DEPLOY}/FaceGallery/add", _add(label))
        result: dict[str, Any] = {}
        for layout, members in (("1_node", nodes[:1]), ("3_nodes", nodes)):
            lb = free_port()
            (work / layout).mkdir()
            proxies.append(start_haproxy(work / layout, lb, [(h, p) for _, h, p in members]))
            wait_for(lambda lb=lb: get("127.0.0.1", lb, "/ready")[0] == 200, 30)
            log(f"{layout}: search load")
            s = phase(lb, roots, seconds, (0.0, 0.0), known, f"{layout}-s")
            log(f"{layout}: add load")
            a = phase(lb, roots, seconds, (1.0, 1.0), known, f"{layout}-a")
            result[layout] = {
                "search_per_s": s["requests_per_s"],
                "search_cpu_s": s["cpu_s_per_request"],
                "search_p50_ms": s["p50_ms"],
                "add_per_s": a["requests_per_s"],
                "add_cpu_s": a["cpu_s_per_request"],
                "add_p50_ms": a["p50_ms"],
                "failed": s["failed"] + a["failed"],
            }
            log(f"{layout}: {result[layout]}")
            last_lb = lb
        one, three = result["1_node"], result["3_nodes"]
        result["cpu_ratio_3_over_1"] = {
            "search": round(three["search_cpu_s"] / one["search_cpu_s"], 3),
            "add": round(three["add_cpu_s"] / one["add_cpu_s"], 3),
        }
        log("propagation under the 8-client load")
        result["propagation_a_to_c"] = propagation([(h, p) for _, h, p in nodes], last_lb, roots, samples)
        return result
    finally:
        for proxy in proxies:
            proxy.terminate()
        for root, _, _ in nodes:
            bu.installer(REPO, root, "stop", DEPLOY, timeout=300)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("store", "cluster", "all"), default="all")
    ap.add_argument("--sizes", default="10000,100000", help="gallery sizes of the store part (default 10000,100000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of load per cluster phase (default 10)")
    ap.add_argument("--samples", type=int, default=30, help="propagation samples (default 30)")
    ap.add_argument("--runtime-from", type=Path, default=None, help="an existing <root>/.runtime to reuse")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    work.chmod(0o711)  # the services run as 'visionpack', which must enter the roots
    pg = PgCluster(work / "pg", durable=True)  # fsync on: SQLite's synchronous=FULL is compared with it
    pg.init()
    result: dict[str, Any] = {
        "benchmark": "scaleout",
        "cpus": os.cpu_count(),
        "postgresql": f"{pg.bin} (this machine, TCP on 127.0.0.1, fsync on)",
        "vector_dim": DIM,
        "crop_bytes": len(CROP),
    }
    try:
        if a.part in ("store", "all"):
            result["store"] = store_part([int(s) for s in a.sizes.split(",")], work, pg)
        if a.part in ("cluster", "all"):
            result["cluster"] = cluster_part(work, pg, a.runtime_from, a.seconds, a.samples)
    finally:
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    threading.excepthook = lambda args: log(f"thread failed: {args.exc_value!r}")
    main()
