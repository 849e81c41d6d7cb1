"""Upgrade and rollback of the real demo-classify deploy under steady load; JSON on stdout.

    .venv/bin/python benchmarks/bench_upgrade.py                       # builds a runtime in a scratch root
    .venv/bin/python benchmarks/bench_upgrade.py --runtime-from DIR    # reuse <DIR> as <root>/.runtime
    .venv/bin/python benchmarks/bench_upgrade.py --runtime docker      # containers (docs/docker.md; as root)

What it does: a scratch install root with a trial license issued by the vendor tool for this
machine; ``install.py install demo-classify`` from this repository; a second package tree (a
copy with ``VERSION`` bumped: an *update package*, same lock file, so the runtime is reused);
then a load process (a second process, loopback only, N client threads, a new connection per
request, the real cat photo) runs while ``install.py upgrade --package <copy>`` and then
``install.py rollback`` run. Reported per phase (before, upgrade, between, rollback, after):
requests, failed requests (any exception, non-200, or an ``error_code``), p50/p99 latency,
and the wall time of each installer command. The load stops itself when the stop file
appears or after --max-seconds, whichever is first.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEPLOY = "demo-classify"
SYSTEM_PYTHON = shutil.which("python3") or sys.executable


def log(msg: str) -> None:
    print(f"[bench_upgrade {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the load process --------------------------------------------------------------------------


def client_main(port: int, deploy: str, image: str, out: str, clients: int, stop_file: str, max_seconds: float) -> None:
    """Run ``clients`` threads until ``stop_file`` exists; write one JSON line per request."""
    import http.client

    body = json.dumps({"image": base64.b64encode(Path(image).read_bytes()).decode(), "top_num": 1})
    lock = threading.Lock()
    rows: list[tuple] = []
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        while not os.path.exists(stop_file) and time.monotonic() < deadline:
            t0 = time.time()
            ok, why = 0, ""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request(
                    "POST",
                    f"/{deploy}/ImageClassification",
                    body=body,
                    headers={"Content-Type": "application/json", "Connection": "close"},
                )
                resp = conn.getresponse()
                doc = json.loads(resp.read())
                conn.close()
                ok = int(resp.status == 200 and "error_code" not in doc and bool(doc.get("results")))
                why = "" if ok else f"HTTP {resp.status} {json.dumps(doc)[:200]}"
            except (OSError, ValueError, http.client.HTTPException) as exc:
                why = repr(exc)
            with lock:
                rows.append((t0, time.time(), ok, why) if why else (t0, time.time(), ok))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    Path(out).write_text("\n".join(json.dumps(r) for r in rows) + "\n")


# --- the driver --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installer(src: Path, root: Path, *args: str, timeout: float = 1800) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}
    t0 = time.monotonic()
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(src / "package" / "Install" / "install.py"), "--root", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"install.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc, wall


def cached_runtime(port: int) -> Path:
    """<cache>/.runtime with a complete venv, built by the installer itself the first time."""
    cache = Path(os.path.expanduser("~/.cache/visionpack-bench"))
    if not list(cache.glob(".runtime/*/bin/gunicorn")):
        log(f"building the runtime once in {cache} (offline, from original/wheels)")
        installer(REPO, cache, "install", DEPLOY, "--stopped", "--force", "--host", "127.0.0.1", "--port", str(port))
        installer(REPO, cache, "remove", DEPLOY, "--purge")
    return cache / ".runtime"


def license_root(root: Path, work: Path) -> None:
    """Vendor side played once: a throwaway key and a 30-day trial for this machine."""
    python = next((root / ".runtime").glob("*/bin/python"))
    tool = REPO / "vendor" / "visionpack_vendor.py"
    run = lambda *a, **kw: subprocess.run([str(x) for x in a], check=True, capture_output=True, timeout=120, **kw)  # noqa: E731
    run(python, tool, "keygen", "--out", work / "keys", "--reuse")
    run(
        python,
        "-c",
        f"from visionpack.licensing.admin import write_request; write_request({str(work / 'req.json')!r})",
        env={**os.environ, "PYTHONPATH": str(REPO / "package")},
    )
    run(
        python,
        tool,
        "issue",
        "--key",
        next((work / "keys").glob("*.key")),
        "--request",
        work / "req.json",
        "--out",
        work / "trial.lic",
        "--days",
        "30",
        "--customer",
        "bench",
        "--instances",
        "64",
    )
    (root / "licenses").mkdir(exist_ok=True)
    shutil.copy2(next((work / "keys").glob("*.pub")), root / "licenses")
    shutil.copy2(work / "trial.lic", root / "licenses" / "license.lic")


def update_package(dest: Path, version: str, bundles: list[str]) -> Path:
    """An update package: this repository's app and models with another VERSION, same runtime lock."""
    shutil.copytree(REPO / "package", dest / "package", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "package" / "VERSION").write_text(version + "\n")
    shutil.copytree(REPO / "start", dest / "start")
    shutil.copytree(REPO / "licenses", dest / "licenses", dirs_exist_ok=True)
    for bundle in bundles:
        shutil.copytree(REPO / "models" / bundle, dest / "models" / bundle)
    (dest / "original").mkdir(parents=True)
    shutil.copy2(REPO / "original" / "requirements.lock", dest / "original" / "requirements.lock")
    os.symlink(REPO / "original" / "wheels", dest / "original" / "wheels")
    if (REPO / "original" / "images").is_dir():  # the docker runtime's image (same lock, same image)
        os.symlink(REPO / "original" / "images", dest / "original" / "images")
    return dest


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


def phase_stats(rows: list[list[float]], start: float, end: float) -> dict[str, Any]:
    # A request belongs to the phase in which it started.
    inside = [r for r in rows if start <= r[0] < end]
    lat = [r[1] - r[0] for r in inside if r[2]]
    return {
        "seconds": round(end - start, 2),
        "requests": len(inside),
        "failed": sum(1 for r in inside if not r[2]),
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": percentile(lat, 1.0),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--runtime-from",
        type=Path,
        default=None,
        help="an existing <root>/.runtime to symlink (default: one built once in ~/.cache/visionpack-bench)",
    )
    ap.add_argument("--root", type=Path, default=None, help="scratch install root (default: a temp dir)")
    ap.add_argument("--clients", type=int, default=4, help="client threads of the load process (default 4)")
    ap.add_argument("--workers", type=int, default=1, help="gunicorn workers of the deploy (default 1)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds of load before, between and after")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="the load process stops by itself after this")
    ap.add_argument(
        "--runtime",
        choices=("process", "docker"),
        default="process",
        help="install --runtime (docker: containers of original/images/, docs/docker.md)",
    )
    ap.add_argument("--keep-root", action="store_true")
    a = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    work.chmod(0o711)  # a root install runs the services as 'visionpack', which must enter the root
    root = a.root or work / "root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    os.symlink((a.runtime_from or cached_runtime(port)).resolve(), root / ".runtime")
    load = None
    stop_file = work / "stop"
    try:
        log(f"installing {DEPLOY} in {root} on port {port}")
        license_root(root, work)
        _, install_wall = installer(
            REPO,
            root,
            "install",
            DEPLOY,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(a.workers),
            "--runtime",
            a.runtime,
            "--timeout",
            "300",
        )
        v1 = (REPO / "package" / "VERSION").read_text().strip()
        v2 = v1 + "-bench2"
        pkg2 = update_package(work / "pkg2", v2, ["efficientnet_lite0_imagenet"])
        out = work / "requests.jsonl"
        load = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--client",
                str(port),
                DEPLOY,
                str(REPO / "package" / "samples" / "cat.jpg"),
                str(out),
                str(a.clients),
                str(stop_file),
                str(a.max_seconds),
            ]
        )
        marks = {"start": time.time()}
        time.sleep(a.settle)
        marks["upgrade_start"] = time.time()
        log(f"upgrade {v1} -> {v2}")
        up, up_wall = installer(REPO, root, "upgrade", DEPLOY, "--package", str(pkg2))
        marks["upgrade_end"] = time.time()
        time.sleep(a.settle)
        marks["rollback_start"] = time.time()
        log(f"rollback {v2} -> {v1}")
        rb, rb_wall = installer(REPO, root, "rollback", DEPLOY)
        marks["rollback_end"] = time.time()
        time.sleep(a.settle)
        marks["end"] = time.time()
        stop_file.write_text("stop\n")
        load.wait(timeout=120)
        rows = [json.loads(line) for line in out.read_text().splitlines() if line]
        status = json.loads(installer(REPO, root, "status", DEPLOY, "--json")[0].stdout)["deploys"][0]
        result = {
            "benchmark": "upgrade",
            "deploy": DEPLOY,
            "runtime": a.runtime,
            "workers": a.workers,
            "clients": a.clients,
            "cpus": os.cpu_count(),
            "from": v1,
            "to": v2,
            "install_wall_s": round(install_wall, 2),
            "upgrade_wall_s": round(up_wall, 2),
            "rollback_wall_s": round(rb_wall, 2),
            "phases": {
                "before": phase_stats(rows, marks["start"], marks["upgrade_start"]),
                "upgrade": phase_stats(rows, marks["upgrade_start"], marks["upgrade_end"]),
                "between": phase_stats(rows, marks["upgrade_end"], marks["rollback_start"]),
                "rollback": phase_stats(rows, marks["rollback_start"], marks["rollback_end"]),
                "after": phase_stats(rows, marks["rollback_end"], marks["end"]),
            },
            "failed_total": sum(1 for r in rows if not r[2]),
            "requests_total": len(rows),
            "failures": sorted({r[3] for r in rows if len(r) > 3})[:10],
            "final_release": status["release"],
            "final_state": status["state"],
            "upgrade_proof": next((ln for ln in up.stdout.splitlines() if "is healthy" in ln), None),
            # The stop-then-start fallback (a master that cannot hand its socket over) says so.
            "upgrade_handed_over": "stop-then-start" not in up.stdout + up.stderr,
            "rollback_handed_over": "stop-then-start" not in rb.stdout + rb.stderr,
            "rollback_proof": next((ln for ln in rb.stdout.splitlines() if "is healthy" in ln), None),
        }
        print(json.dumps(result, indent=2))
        return result
    finally:
        stop_file.write_text("stop\n")
        if load and load.poll() is None:
            load.kill()
        # remove, not stop: a docker deploy's container would outlive the scratch root.
        subprocess.run(
            [
                SYSTEM_PYTHON,
                str(REPO / "package" / "Install" / "install.py"),
                "--root",
                str(root),
                "remove" if a.runtime == "docker" and not a.keep_root else "stop",
                DEPLOY,
            ],
            capture_output=True,
            timeout=300,
        )
        if not a.keep_root:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        p, d, img, o, c, sf, mx = sys.argv[2:9]
        client_main(int(p), d, img, o, int(c), sf, float(mx))
    else:
        main()
