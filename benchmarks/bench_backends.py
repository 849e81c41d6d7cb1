"""Inference backends benchmark (issue 16): one run, JSON on stdout, ratios measured in the same run.

    .venv/bin/python benchmarks/bench_backends.py              # full run (~6-10 min on 2 loaded cores)
    .venv/bin/python benchmarks/bench_backends.py --quick      # smoke run (~3 min)
    .venv/bin/python benchmarks/bench_backends.py --no-paddlex # without PaddleX serving

1. ``models``: per demo bundle, p50/p95 of one inference (the bundle's parity sample, batch as
   recorded) on paddle, onnxruntime and openvino at 1 and 2 threads. All six engines of a model
   are loaded in this process and measured in rounds; inside a round each runs ``--runs`` times,
   back to back, in an order that rotates from round to round (load from other processes hits
   them alike).
2. ``service``: the classification deploy under gunicorn, 1 worker, with each backend forced
   (VISIONPACK_BACKEND) and with ``auto`` as install would settle it (installer/tune.py on a
   scratch release), plus the auto deploy with 2 workers, and PaddleX serving with threads
   matched to the cores; 8 clients (benchmarks/loadgen.py), rounds rotating the servers;
   requests/s and RSS per worker.
3. ``face``: the face deploy's PaddleX ``/face-recognition-infer`` (MTCNN + dlib ResNet, one
   face, visualisation off) through the Flask app in this process, Paddle forced vs ``auto`` as
   install settles it, requests interleaved; p50 of the whole request.
4. ``targets``: auto vs PaddleX requests/s, RSS per worker of the chosen backend, face infer p50
   auto vs Paddle (and the face models' summed per-model p50, from part 1).

``--parts models,service,face`` runs a subset.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "package"))

import servers as S  # noqa: E402  (benchmarks/ is not a package)

from visionpack import config  # noqa: E402
from visionpack.bundle import load_bundle  # noqa: E402
from visionpack.inference import autotune  # noqa: E402
from visionpack.inference.engine import create_engine  # noqa: E402

BACKENDS = ("paddle", "onnxruntime", "openvino")
FACE = ("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "dlib_resnet_face")
CLS = REPO / "models" / "efficientnet_lite0_imagenet"
TARGETS = {"auto_vs_paddlex_rps_min": 2.5, "rss_per_worker_mib_max": 250, "face_p50_ratio_max": 0.75}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def bench_model(path: Path, rounds: int, runs: int) -> dict[str, Any]:
    bundle = load_bundle(path)
    inputs, _ = autotune.parity_record(bundle)
    engines = {}
    for kind in BACKENDS:
        for threads in (1, 2):
            cfg = config.from_mapping({"backend": kind, "threads_per_worker": threads, "models": {"m": str(path)}})
            engines[f"{kind}/{threads}"] = create_engine(bundle, cfg)
    times: dict[str, list[float]] = {k: [] for k in engines}
    order = list(engines)
    for r in range(rounds):
        for key in order[r % len(order) :] + order[: r % len(order)]:
            engine = engines[key]
            engine.run(inputs)  # the one after another engine ran: caches warm again
            for _ in range(runs):
                t = time.perf_counter()
                engine.run(inputs)
                times[key].append((time.perf_counter() - t) * 1e3)
    out = {key: {"p50_ms": pct(v, 50), "p95_ms": pct(v, 95), "runs": len(v)} for key, v in times.items()}
    base = out["paddle/1"]["p50_ms"]
    for row in out.values():
        row["speedup_vs_paddle_1t"] = round(base / row["p50_ms"], 3)
    return out


def auto_release(
    work: Path, service: str = "classification", models: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """What install settles for a deploy: installer/tune.py on a scratch release."""
    from visionpack.installer import tune

    release = work / f"release-{service}"
    release.mkdir()
    (release / "package").symlink_to(REPO / "package")
    models = models or {"classifier": str(CLS)}
    cfg = config.from_mapping({"service": service, "workers": 1, "models": models})
    (release / "config.yml").write_text(config.dump(cfg))
    said: list[str] = []
    new = tune.tune_release(REPO / ".venv", release, cfg, said.append)
    return dict(new.tuning), said


def bench_service(a: argparse.Namespace, work: Path, tuning: dict[str, Any]) -> dict[str, Any]:
    b64 = base64.b64encode((REPO / "package" / "samples" / "cat.jpg").read_bytes()).decode()
    easydl = work / "easydl.json"
    easydl.write_text(json.dumps({"image": b64, "top_num": 5}))
    paddlex_body = work / "paddlex.json"
    paddlex_body.write_text(json.dumps({"image": b64, "topk": 5}))
    ours_path = "/bench/ImageClassification"
    servers: dict[str, S.Server] = {}
    try:
        for kind in BACKENDS:
            log(f"starting the deploy forced to {kind} (1 worker)")
            servers[f"{kind}_1w"] = S.start_gunicorn(f"{kind}_1w", CLS, 1, work, extra_cfg={"backend": kind})
        for n in (1, 2):
            log(f"starting the auto deploy ({n} worker(s)): {tuning['classifier']['backend']}")
            servers[f"auto_{n}w"] = S.start_gunicorn(f"auto_{n}w", CLS, n, work, extra_cfg={"tuning": tuning})
        paths = {name: (ours_path, easydl) for name in servers}
        if not a.no_paddlex:
            pyx = REPO / ".paddlex-venv" / "bin" / "python"
            bundle = load_bundle(CLS)
            yml = S.paddlex_pipeline_yaml(pyx, CLS, bundle.model_name, work / "paddlex_cfg")
            cores = str(os.cpu_count() or 1)
            log(f"starting PaddleX serving with threads matched (PADDLE_PDX_CPU_NUM_THREADS={cores})")
            servers["paddlex_threads_matched"] = S.start_paddlex(
                "paddlex_threads_matched", pyx, yml, work, env_extra={"PADDLE_PDX_CPU_NUM_THREADS": cores}
            )
            paths["paddlex_threads_matched"] = ("/image-classification", paddlex_body)
        rps: dict[str, list[float]] = {name: [] for name in servers}
        order = list(servers)
        for r in range(a.service_rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                path, body = paths[name]
                lg = S.run_loadgen(servers[name].port, path, body, 8, warmup=a.warmup, duration=a.duration)
                if lg["requests_failed"]:
                    raise RuntimeError(f"{name}: {lg['requests_failed']} failed requests: {lg['errors']}")
                rps[name].append(lg["rps"])
                log(f"round {r + 1} {name}: {lg['rps']} req/s")
        out = {}
        for name, srv in servers.items():
            mem = srv.memory()
            out[name] = {
                "rps_median": round(statistics.median(rps[name]), 2),
                "rps_rounds": rps[name],
                "rss_mib_per_worker": [w["rss_mib"] for w in mem["workers"]],
                "pss_mib_per_worker": [w["pss_mib"] for w in mem["workers"]],
            }
        if not a.no_paddlex:
            px = rps["paddlex_threads_matched"]
            for name in ("auto_1w", "auto_2w", "paddle_1w"):
                out[name]["vs_paddlex_per_round"] = [round(x / y, 3) for x, y in zip(rps[name], px)]
                out[name]["vs_paddlex_median"] = round(statistics.median(out[name]["vs_paddlex_per_round"]), 3)
        return out
    finally:
        for srv in servers.values():
            srv.stop()


def bench_face(work: Path, rounds: int) -> dict[str, Any]:
    """/face-recognition-infer, one face, Paddle forced vs the auto choice, interleaved."""
    from visionpack.api.app import create_app

    roles = {"detector_pnet": "mtcnn_pnet", "detector_rnet": "mtcnn_rnet", "detector_onet": "mtcnn_onet"}
    models = {
        **{r: str(REPO / "models" / n) for r, n in roles.items()},
        "feature": str(REPO / "models" / "dlib_resnet_face"),
    }
    tuning, said = auto_release(work, "face", models)
    faces = REPO / "package" / "samples" / "faces"
    pairs = [
        {"image": base64.b64encode((faces / p).read_bytes()).decode(), "label": lab}
        for p, lab in (line.split(maxsplit=1) for line in (faces / "gallery.txt").read_text().splitlines())
    ]
    image = base64.b64encode((faces / "obama_2.jpg").read_bytes()).decode()
    clients, bodies = {}, {}
    for name, extra in (("paddle", {"backend": "paddle"}), ("auto", {"tuning": tuning})):
        data = work / f"face-{name}"
        data.mkdir()
        cfg = config.from_mapping(
            {"deploy": "demo-face", "service": "face", "models": models, "data_dir": str(data), **extra}
        )
        client = create_app(cfg, gate=None).test_client()
        key = client.post("/face-recognition-index-build", json={"imageLabelPairs": pairs}).get_json()["result"]
        clients[name], bodies[name] = client, {"image": image, "indexKey": key["indexKey"], "visualize": False}
        client.post("/face-recognition-infer", json=bodies[name])  # warm-up
    ms: dict[str, list[float]] = {name: [] for name in clients}
    for r in range(rounds):
        for name in list(clients)[r % 2 :] + list(clients)[: r % 2]:
            t = time.perf_counter()
            resp = clients[name].post("/face-recognition-infer", json=bodies[name])
            ms[name].append((time.perf_counter() - t) * 1e3)
            if resp.status_code != 200:
                raise RuntimeError(f"face {name}: HTTP {resp.status_code}")
    out: dict[str, Any] = {n: {"p50_ms": pct(v, 50), "p95_ms": pct(v, 95), "requests": len(v)} for n, v in ms.items()}
    out["auto_choice"] = {role: rec["backend"] for role, rec in tuning.items()}
    out["install_log"] = said
    out["auto_vs_paddle_p50"] = round(out["auto"]["p50_ms"] / out["paddle"]["p50_ms"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-paddlex", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--service-rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--face-rounds", type=int, default=60)
    p.add_argument("--parts", default="models,service,face")
    a = p.parse_args(argv)
    # Paddle's C++ prints on stdout (e.g. "ReduceMeanCheckIfOneDNNSupport"): the JSON alone goes there.
    stdout = os.dup(1)
    os.dup2(2, 1)
    if a.quick:
        a.rounds, a.runs, a.service_rounds, a.duration, a.warmup, a.face_rounds = 2, 10, 1, 5.0, 1.0, 10
    parts = set(a.parts.split(","))
    result: dict[str, Any] = {"cores": os.cpu_count(), "args": vars(a), "models": {}}
    for path in sorted(p for p in (REPO / "models").iterdir() if (p / "parity.npz").is_file()):
        if "models" in parts:
            log(f"model {path.name}")
            result["models"][path.name] = bench_model(path, a.rounds, a.runs)
    with tempfile.TemporaryDirectory(prefix="vp-bench-backends-") as tmp:
        work = Path(tmp)
        if "service" in parts:
            tuning, said = auto_release(work)
            result["auto"] = {"tuning": tuning, "install_log": said}
            result["service"] = bench_service(a, work, tuning)
        if "face" in parts:
            log("face deploy: paddle vs auto, in process")
            result["face"] = bench_face(work, a.face_rounds)
    result["targets"] = summarise(result)
    with os.fdopen(stdout, "w") as out:
        out.write(json.dumps(result, indent=2) + "\n")
    return 0


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    svc, models = result.get("service", {}), result["models"]
    out: dict[str, Any] = {"targets": TARGETS}
    if "auto" in result:
        out["classifier_auto_choice"] = result["auto"]["tuning"]["classifier"]["backend"]
    if "face" in result:
        out["face_infer_p50_auto_vs_paddle"] = result["face"]["auto_vs_paddle_p50"]
    if "vs_paddlex_median" in svc.get("auto_1w", {}):
        out["auto_vs_paddlex_rps"] = {"1_worker": svc["auto_1w"]["vs_paddlex_median"]}
        out["auto_vs_paddlex_rps"]["2_workers"] = svc["auto_2w"]["vs_paddlex_median"]
        out["paddle_vs_paddlex_rps_1_worker"] = svc["paddle_1w"]["vs_paddlex_median"]
    out["rss_mib_per_worker"] = {name: row["rss_mib_per_worker"] for name, row in svc.items()}
    # Face: per model the fastest backend at 1 thread (what auto picks when all agree), summed.
    face = [models[m] for m in FACE if m in models]
    if len(face) == len(FACE):
        paddle = sum(m["paddle/1"]["p50_ms"] for m in face)
        best = sum(min(m[f"{k}/1"]["p50_ms"] for k in BACKENDS) for m in face)
        out["face_p50_sum_ms"] = {"paddle": round(paddle, 3), "auto": round(best, 3), "ratio": round(best / paddle, 3)}
    return out


if __name__ == "__main__":
    sys.exit(main())
