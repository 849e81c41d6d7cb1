"""Classification benchmark: one run, one bundle, one 640x480 JPEG, JSON on stdout.

    .venv/bin/python benchmarks/bench_classification.py            # full run (~6-8 min on 2 cores)
    .venv/bin/python benchmarks/bench_classification.py --quick    # smoke run (~2 min)
    .venv/bin/python benchmarks/bench_classification.py --no-paddlex

See benchmarks/README.md for what every number means. Measurements are taken in *rounds*;
inside a round every configuration runs once, back to back, and the server order rotates from
round to round, so load from other processes on the shared machine hits all of them alike.
Each figure is the median over rounds, with the per-round values kept for the spread; the
ratios the targets are about are computed per round and then their median is taken.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import servers as S  # noqa: E402  (benchmarks/ is not a package)
from bench_report import markdown_table  # noqa: E402

DEFAULT_BUNDLE = REPO / "models" / "efficientnet_lite0_imagenet"
DEFAULT_PADDLEX_PY = REPO / ".paddlex-venv" / "bin" / "python"
TARGETS = {"latency_overhead_max": 1.25, "scaling_2w_min": 1.7, "vs_paddlex_min": 1.5}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_image(path: Path) -> dict[str, Any]:
    """scikit-image's coffee photo resized to 640x480, JPEG quality 90 (deterministic bytes)."""
    import cv2
    from skimage import data

    rgb = cv2.resize(data.coffee(), (640, 480), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    path.write_bytes(buf.tobytes())
    return {
        "source": "skimage.data.coffee(), cv2.resize to 640x480 (INTER_AREA), JPEG quality 90",
        "width": 640,
        "height": 480,
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def med(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def spread(xs: list[float | None]) -> dict[str, Any]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "rounds": []}
    return {"median": med(xs), "min": round(min(xs), 3), "max": round(max(xs), 3), "rounds": [round(x, 3) for x in xs]}


class CpuWindow:
    """Machine-wide busy CPU over a window, split into ours (server + client) and the rest."""

    def __init__(self, server: S.Server) -> None:
        self.server = server

    def __enter__(self) -> CpuWindow:
        self.t0 = time.perf_counter()
        self.sys0 = psutil.cpu_times()
        self.srv0 = self.server.cpu_seconds()
        self.wrk0 = self.server.worker_cpu_seconds()
        self.thr0 = self._threads()
        return self

    def _threads(self) -> dict[tuple[int, int], float]:
        out = {}
        for p in self.server.workers():
            try:
                for t in p.threads():
                    out[(p.pid, t.id)] = t.user_time + t.system_time
            except psutil.NoSuchProcess:
                pass
        return out

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.t0
        sys1 = psutil.cpu_times()
        self.server_cpu = self.server.cpu_seconds() - self.srv0
        wrk1 = self.server.worker_cpu_seconds()
        self.worker_cpu = [b - a for a, b in zip(self.wrk0, wrk1)]
        thr1 = self._threads()
        # Busiest threads of the workers: shows where CPU goes (request threads vs Paddle's pool).
        self.top_threads = sorted((round(v - self.thr0.get(k, 0.0), 2) for k, v in thr1.items()), reverse=True)[:6]
        idle = (sys1.idle - self.sys0.idle) + (getattr(sys1, "iowait", 0) - getattr(self.sys0, "iowait", 0))
        total = sum(sys1) - sum(self.sys0)
        self.busy = total - idle
        self.nice = getattr(sys1, "nice", 0) - getattr(self.sys0, "nice", 0)

    def report(self, client_cpu: float, requests: int) -> dict[str, Any]:
        other = self.busy - self.server_cpu - client_cpu
        return {
            "wall_s": round(self.wall, 2),
            "server_cpu_s": round(self.server_cpu, 2),
            "server_cpu_ms_per_request": round(self.server_cpu * 1e3 / requests, 2) if requests else None,
            "worker_cpu_share": [round(w / max(1e-9, sum(self.worker_cpu)), 3) for w in self.worker_cpu],
            "busiest_worker_threads_cpu_s": self.top_threads,
            "client_cpu_s": round(client_cpu, 2),
            "machine_busy_cores": round(self.busy / self.wall, 2),
            "other_processes_cores": round(max(0.0, other) / self.wall, 2),
            "niced_cores": round(self.nice / self.wall, 2),
        }


def micro(bundle: Path, jpeg: Path, threads: int, package: Path, server_env: dict[str, str]) -> dict[str, Any]:
    # The same environment a gunicorn worker gets (its conf sets the math-library thread counts).
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "GLOG_minloglevel": "2",
        **server_env,
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "micro_classification.py"),
            "--bundle",
            str(bundle),
            "--jpeg",
            str(jpeg),
            "--threads",
            str(threads),
            "--package",
            str(package),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"micro benchmark failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def top_ids(doc: Any) -> list[int] | None:
    try:
        return [int(c["id"]) for c in doc["result"]["categories"]]
    except (KeyError, TypeError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per load run")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each load run")
    ap.add_argument("--requests", type=int, default=150, help="single-client requests per route per round")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="1 round, 6 s loads, 60 requests: a smoke run")
    ap.add_argument("--no-paddlex", action="store_true", help="skip PaddleX serving")
    ap.add_argument(
        "--no-paddlex-tuned",
        action="store_true",
        help="skip the extra PaddleX run with PADDLE_PDX_CPU_NUM_THREADS=cores",
    )
    ap.add_argument("--paddlex-python", type=Path, default=DEFAULT_PADDLEX_PY)
    ap.add_argument(
        "--package",
        type=Path,
        default=REPO / "package",
        help="package dir our service runs from (to measure a patched scratch copy)",
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra environment for our gunicorn (repeatable), e.g. KMP_BLOCKTIME=0",
    )
    ap.add_argument("--workers", default="1,2", help="our worker counts to measure (default 1,2)")
    ap.add_argument("--label", default="", help="suffix for the results file, e.g. 'patched'")
    ap.add_argument("--out-dir", type=Path, default=BENCH / "results")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--keep-work", action="store_true", help="keep the temp dir with configs and logs")
    ap.add_argument(
        "--table",
        type=Path,
        metavar="RESULT_JSON",
        help="print a saved result as the markdown table of benchmarks/README.md and exit",
    )
    a = ap.parse_args(argv)
    if a.table:
        print(markdown_table(json.loads(a.table.read_text())))
        return 0
    if "1" not in a.workers.split(","):
        ap.error("--workers must include 1 (the single-client latency runs against 1 worker)")
    if a.quick:
        a.rounds, a.duration, a.warmup, a.requests = 1, 6.0, 2.0, 60

    sys.path.insert(0, str(REPO / "package"))
    from visionpack.bundle import load_bundle

    bundle = load_bundle(a.bundle)
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="vp-bench-"))
    jpeg = work / "coffee_640x480.jpg"
    image = make_image(jpeg)
    b64 = base64.b64encode(jpeg.read_bytes()).decode("ascii")
    body_easydl = work / "easydl.json"
    body_easydl.write_text(json.dumps({"image": b64, "top_num": 5}))
    body_paddlex = work / "paddlex.json"
    body_paddlex.write_text(json.dumps({"image": b64, "topk": 5}))
    easydl_path = "/bench/ImageClassification"
    paddlex_path = "/image-classification"

    result: dict[str, Any] = {
        "benchmark": "classification",
        "label": a.label,
        "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cores": cores,
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "bundle": {
            "path": str(a.bundle.relative_to(REPO) if a.bundle.is_relative_to(REPO) else a.bundle),
            "name": bundle.name,
            "paddlex_model_name": bundle.model_name,
            "onednn": bundle.onednn_default,
        },
        "image": {**image, "base64_bytes": len(b64)},
        "method": {
            "rounds": a.rounds,
            "load_duration_s": a.duration,
            "load_warmup_s": a.warmup,
            "clients": a.clients,
            "single_client_requests": a.requests,
            "loadgen": "benchmarks/loadgen.py in its own process: keep-alive sockets, one request in "
            "flight per client, pre-built request bytes, same bytes for every server",
        },
    }

    servers: dict[str, S.Server] = {}
    try:
        server_env = dict(kv.split("=", 1) for kv in a.server_env)
        counts = [int(n) for n in a.workers.split(",")]
        for n in counts:
            name = "ours_1_worker" if n == 1 else f"ours_{n}_workers"
            log(f"starting our service: {n} worker(s)")
            servers[name] = S.start_gunicorn(name, a.bundle, n, work, package=a.package, env_extra=server_env)
        if cores > 1 and 2 in counts:
            # One worker at the two-worker layout's per-worker setting (1 Paddle thread): scaling
            # at equal workers' settings, beside the target's 1 worker at its own default.
            log("starting our service: 1 worker, 1 Paddle thread")
            servers["ours_1_worker_1_thread"] = S.start_gunicorn(
                "ours_1_worker_1_thread",
                a.bundle,
                1,
                work,
                package=a.package,
                env_extra=server_env,
                extra_cfg={"threads_per_worker": max(1, cores // 2)},
            )
        first = servers[next(iter(servers))]
        result["ours"] = {
            "gunicorn_conf": first.notes["conf"],
            "worker_class": "gthread",
            "package": str(a.package),
            "server_env": server_env,
            "paddle_threads_per_worker": {str(n): max(1, cores // n) for n in counts},
            "max_batch": _default_max_batch(),
        }
        if not a.no_paddlex:
            _start_paddlex(a, bundle, work, servers, result, cores)

        # Every server must give the same answer for the same image before we time anything.
        answers = {}
        for name, srv in servers.items():
            status, doc = S.http_post_json(srv.port, paddlex_path, body_paddlex.read_bytes())
            answers[name] = {"status": status, "top5_ids": top_ids(doc)}
        result["answers"] = answers
        ref = answers["ours_1_worker"]["top5_ids"]
        if not ref or any(v["top5_ids"] != ref for v in answers.values()):
            raise RuntimeError(f"servers disagree or fail on the benchmark image: {answers}")

        rounds: list[dict[str, Any]] = []
        names = list(servers)
        for r in range(a.rounds):
            log(f"round {r + 1}/{a.rounds}: micro (threads 2, 1)")
            rr: dict[str, Any] = {"micro": {}, "single": {}, "load": {}}
            for th in sorted({cores, 1}, reverse=True):
                rr["micro"][th] = micro(a.bundle, jpeg, th, a.package, server_env)
            log(f"round {r + 1}/{a.rounds}: single client")
            o1 = servers["ours_1_worker"]
            for label, port, path, body in (
                ("ours_easydl", o1.port, easydl_path, body_easydl),
                ("ours_paddlex_route", o1.port, paddlex_path, body_paddlex),
                *(
                    (("paddlex_serving", servers["paddlex_serving"].port, paddlex_path, body_paddlex),)
                    if "paddlex_serving" in servers
                    else ()
                ),
            ):
                S.run_loadgen(port, path, body, 1, requests=max(10, a.requests // 10))
                rr["single"][label] = S.run_loadgen(port, path, body, 1, requests=a.requests)
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                srv = servers[name]
                log(f"round {r + 1}/{a.rounds}: {a.clients} clients -> {name}")
                with CpuWindow(srv) as w:
                    lg = S.run_loadgen(
                        srv.port, paddlex_path, body_paddlex, a.clients, warmup=a.warmup, duration=a.duration
                    )
                # The window includes the load generator's warm-up; scale server CPU by time.
                lg["cpu"] = w.report(lg["client_cpu_s"] * (w.wall / max(1e-9, lg["window_s"])), lg["requests_ok"])
                lg["cpu"]["server_cpu_ms_per_request"] = _cpu_per_req(w, lg)
                lg.pop("sample_response", None)
                rr["load"][name] = lg
            rounds.append(rr)
        result["memory_after_load"] = {name: srv.memory() for name, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.stop()
    result["rounds_raw"] = rounds
    _summarise(result, rounds, cores)
    result["finished_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    text = json.dumps(result, indent=2)
    print(text)
    if not a.no_save:
        a.out_dir.mkdir(parents=True, exist_ok=True)
        stamp = result["started_utc"].replace(":", "").replace("-", "")
        suffix = ("-quick" if a.quick else "") + (f"-{a.label}" if a.label else "")
        (a.out_dir / f"classification-{stamp}{suffix}.json").write_text(text + "\n")
        log(f"saved {a.out_dir}/classification-{stamp}{suffix}.json")
    _print_summary(result)
    if a.keep_work:
        log(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _cpu_per_req(w: CpuWindow, lg: dict[str, Any]) -> float | None:
    # Server CPU over the whole window (warm-up included) divided by all requests answered in
    # it is biased by partial requests; scale by the measured fraction of the window instead.
    if not lg["requests_ok"] or not lg["window_s"]:
        return None
    measured_fraction = lg["window_s"] / w.wall
    return round(w.server_cpu * measured_fraction * 1e3 / lg["requests_ok"], 2)


def _start_paddlex(a: argparse.Namespace, bundle: Any, work: Path, servers: dict, result: dict, cores: int) -> None:
    info: dict[str, Any] = {"python": str(a.paddlex_python)}
    result["paddlex"] = info
    if not a.paddlex_python.exists():
        log("creating the PaddleX env with tools/paddlex_env.sh")
        subprocess.run(["bash", str(REPO / "tools" / "paddlex_env.sh")], check=True, stdout=subprocess.DEVNULL)
    info["version"] = subprocess.run(
        [
            str(a.paddlex_python),
            "-c",
            "import importlib.metadata as m; print(m.version('paddlex'), m.version('paddlepaddle'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    yml = S.paddlex_pipeline_yaml(a.paddlex_python, a.bundle, bundle.model_name, work / "paddlex_cfg")
    info["pipeline_yaml"] = yml.read_text()
    info["launcher"] = "benchmarks/paddlex_serve.py (paddlex --serve + the Topk list fix for PaddleX 3.7.2)"
    log(f"starting PaddleX serving (model_name {bundle.model_name}, its default cpu_threads=10, oneDNN default)")
    servers["paddlex_serving"] = S.start_paddlex("paddlex_serving", a.paddlex_python, yml, work)
    info["configs"] = {
        "paddlex_serving": "PaddleX defaults: cpu_threads 10 (PADDLE_PDX_CPU_NUM_THREADS), "
        "run_mode mkldnn (PADDLE_PDX_ENABLE_MKLDNN_BYDEFAULT)"
    }
    if not a.no_paddlex_tuned:
        log(f"starting PaddleX serving tuned to this machine (PADDLE_PDX_CPU_NUM_THREADS={cores})")
        servers["paddlex_serving_threads_matched"] = S.start_paddlex(
            "paddlex_serving_threads_matched",
            a.paddlex_python,
            yml,
            work,
            env_extra={"PADDLE_PDX_CPU_NUM_THREADS": str(cores)},
        )
        info["configs"]["paddlex_serving_threads_matched"] = f"PADDLE_PDX_CPU_NUM_THREADS={cores}, else defaults"


def _summarise(result: dict[str, Any], rounds: list[dict[str, Any]], cores: int) -> None:
    def col(fn: Callable[[dict], Any]) -> list[Any]:
        out = []
        for rr in rounds:
            try:
                out.append(fn(rr))
            except (KeyError, TypeError, ZeroDivisionError):
                out.append(None)
        return out

    pred: dict[str, Any] = {}
    for th in sorted({cores, 1}, reverse=True):
        pred[f"threads_{th}"] = {
            "p50_ms": spread(col(lambda rr, th=th: rr["micro"][th]["predictor_ms"]["p50"])),
            "p95_ms": spread(col(lambda rr, th=th: rr["micro"][th]["predictor_ms"]["p95"])),
        }
    result["predictor"] = pred
    m = lambda key, q="p50": spread(col(lambda rr: rr["micro"][cores][key][q]))  # noqa: E731
    result["decode_preprocess"] = {
        "decode_preprocess_p50_ms": m("decode_preprocess_ms"),
        "decode_preprocess_p95_ms": m("decode_preprocess_ms", "p95"),
        "decode_p50_ms": m("decode_ms"),
        "preprocess_p50_ms": m("preprocess_ms"),
        "json_base64_p50_ms": m("envelope_ms"),
        "service_inprocess_p50_ms": m("service_inprocess_ms"),
    }
    result["single_client"] = {
        label: {
            "p50_ms": spread(col(lambda rr, label=label: rr["single"][label]["latency_ms"]["p50"])),
            "p95_ms": spread(col(lambda rr, label=label: rr["single"][label]["latency_ms"]["p95"])),
        }
        for label in (rounds[0]["single"] if rounds else {})
    }
    load: dict[str, Any] = {}
    for name in rounds[0]["load"] if rounds else {}:
        load[name] = {
            "rps": spread(col(lambda rr, name=name: rr["load"][name]["rps"])),
            "latency_p50_ms": spread(col(lambda rr, name=name: rr["load"][name]["latency_ms"]["p50"])),
            "latency_p95_ms": spread(col(lambda rr, name=name: rr["load"][name]["latency_ms"]["p95"])),
            "server_cpu_ms_per_request": spread(
                col(lambda rr, name=name: rr["load"][name]["cpu"]["server_cpu_ms_per_request"])
            ),
            "client_cpu_ms_per_request": spread(
                col(lambda rr, name=name: rr["load"][name]["client_cpu_ms_per_request"])
            ),
            "other_processes_cores": spread(
                col(lambda rr, name=name: rr["load"][name]["cpu"]["other_processes_cores"])
            ),
            "failed": sum(x or 0 for x in col(lambda rr, name=name: rr["load"][name]["requests_failed"])),
        }
    result["load"] = load

    # Targets: each ratio per round (same minute, same background), then the median.
    lat = col(
        lambda rr: (
            rr["single"]["ours_easydl"]["latency_ms"]["p50"]
            / (rr["micro"][cores]["predictor_ms"]["p50"] + rr["micro"][cores]["decode_preprocess_ms"]["p50"])
        )
    )
    scal = col(lambda rr: rr["load"]["ours_2_workers"]["rps"] / rr["load"]["ours_1_worker"]["rps"])
    targets: dict[str, Any] = {
        "service_p50_over_predictor_plus_preprocess": _target(lat, TARGETS["latency_overhead_max"], "<="),
        "rps_2_workers_over_1_worker": _target(scal, TARGETS["scaling_2w_min"], ">="),
    }
    for px in ("paddlex_serving", "paddlex_serving_threads_matched"):
        if px in load:
            for ours in ("ours_1_worker", "ours_2_workers"):
                targets[f"rps_{ours}_over_{px}"] = _target(
                    col(lambda rr, ours=ours, px=px: rr["load"][ours]["rps"] / rr["load"][px]["rps"]),
                    TARGETS["vs_paddlex_min"],
                    ">=",
                )
    result["targets"] = targets
    if "ours_1_worker_1_thread" in load and "ours_2_workers" in load:
        # Not a target: the same question (do workers add up, no oversubscription?) asked of
        # workers with equal settings. The target's 1 worker uses every core by itself.
        same = col(lambda rr: rr["load"]["ours_2_workers"]["rps"] / rr["load"]["ours_1_worker_1_thread"]["rps"])
        result["supplementary"] = {"rps_2_workers_over_1_worker_at_their_threads_per_worker": spread(same)}
    pb = spread(col(lambda rr: rr["micro"][cores]["predictor_batch4_per_image_ms"]["p50"]))
    result["predictor"][f"threads_{cores}"]["batch4_per_image_p50_ms"] = pb


def _default_max_batch() -> int:
    from visionpack.config import ServiceConfig

    return ServiceConfig().max_batch


def _target(values: list[float | None], threshold: float, op: str) -> dict[str, Any]:
    s = spread(values)
    v = s["median"]
    ok = None if v is None else (v <= threshold if op == "<=" else v >= threshold)
    return {
        "value": v,
        "target": f"{op} {threshold}",
        "pass": ok,
        "min": s["min"],
        "max": s["max"],
        "rounds": s["rounds"],
    }


def _print_summary(result: dict[str, Any]) -> None:
    lines = ["", "target                                              value   target   pass  (per-round)"]
    for name, t in result.get("targets", {}).items():
        lines.append(f"{name:50s} {t['value']!s:>7} {t['target']:>8} {str(t['pass']):>5}  {t['rounds']}")
    print("\n".join(lines), file=sys.stderr)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
