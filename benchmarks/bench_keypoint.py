"""Keypoint service vs PaddleX: the keypoint stage and end to end, with 1, 4 and 8 persons. Prints JSON.

    .venv/bin/python benchmarks/bench_keypoint.py [--det DIR --kpt DIR] [--threads 1] [--rounds 15]

Same run, same bundles, same images for every contender:
  ours_batched    our keypoint stage: all persons of the image in one model call
  ours_one_by_one the same engine and code, one crop per call (PaddleX's pattern, emulated)
  paddlex_stage   PaddleX 3.7.2's own keypoint predictor called once per person, exactly as its
                  human_keypoint_detection pipeline does (in .paddlex-venv, a child process)
  *_e2e           whole request: detector + keypoints (ours: service.predict without drawing;
                  PaddleX: pipeline.predict on the decoded image)
The keypoint stage gets the scene's ground-truth person boxes, so "8 persons" means 8 crops on
both sides; end to end, each side uses what its detector finds (reported as persons_found).
Images come from tools/train_pose's scene generator (fixed seeds). Both sides run Paddle
Inference 3.3.1 on CPU without oneDNN and with the same thread count.

The build machine is shared (training and other test runs beside us), so contenders are
measured in interleaved rounds - one run of each per round, PaddleX's child process driven
over a pipe - and every contender sees the same load; medians and minima are over rounds.
Bundles default to the demo bundles; without them, the toy exports of the integration tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "package"))
sys.path.insert(0, str(REPO))

PADDLEX_SIDE = textwrap.dedent("""
    import json, sys, time
    import cv2, numpy as np
    from paddlex import create_model, create_pipeline
    from paddlex.inference import PaddlePredictorOption

    job = json.loads(open(sys.argv[1]).read())
    opt = lambda: PaddlePredictorOption(device_type="cpu", cpu_threads=job["threads"], run_mode="paddle")
    cfg = {"pipeline_name": "human_keypoint_detection", "SubModules": {
        "ObjectDetection": {"module_name": "object_detection", "model_name": job["det_name"], "model_dir": job["det"],
                            "batch_size": 1, "threshold": None, "img_size": None},
        "KeypointDetection": {"module_name": "keypoint_detection", "model_name": job["kpt_name"],
                              "model_dir": job["kpt"], "batch_size": 1, "flip": False, "use_udp": None}}}
    pipe = create_pipeline(config=cfg, device="cpu", pp_option=opt())
    kpt = create_model(model_name=job["kpt_name"], model_dir=job["kpt"], device="cpu", pp_option=opt())
    aspect = kpt.input_size[0] / kpt.input_size[1]

    def center_scale(b):  # the pipeline's _box_xyxy2cs, so both sides crop the same windows
        x1, y1, x2, y2 = (np.float32(v) for v in b)
        c = np.array([x1 + x2, y1 + y2]) * 0.5
        w, h = x2 - x1, y2 - y1
        if w > aspect * h:
            h = w / aspect
        elif w < aspect * h:
            w = h * aspect
        return c, np.array([w, h]) * 1.25

    cases = []
    for case in job["cases"]:
        img = cv2.imread(case["image"])
        cases.append((img, [center_scale(b) for b in case["boxes"]]))

    def stage(i):
        img, windows = cases[i]
        return [list(kpt({"img": img, "center": c, "scale": s}))[0] for c, s in windows]

    def e2e(i):
        return list(pipe.predict(cases[i][0], det_threshold=job["threshold"]))[0]

    print(json.dumps({"ready": True, "found": [len(e2e(i)["boxes"]) for i in range(len(cases))]}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        fn = stage if cmd["what"] == "stage" else e2e
        t = time.perf_counter()
        fn(cmd["case"])
        print(json.dumps({"ms": (time.perf_counter() - t) * 1000}), flush=True)
""")


class PaddleXSide:
    """PaddleX in its own venv, timing one call per request so we can interleave with ours."""

    def __init__(self, python: str, job: dict, tmp: Path) -> None:
        (tmp / "job.json").write_text(json.dumps(job))
        (tmp / "paddlex_side.py").write_text(PADDLEX_SIDE)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(
            PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True",
            PADDLE_PDX_ENABLE_MKLDNN_BYDEFAULT="False",
            GLOG_minloglevel="2",
        )
        self.proc = subprocess.Popen(
            [python, str(tmp / "paddlex_side.py"), str(tmp / "job.json")],
            cwd=tmp,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(tmp / "paddlex.err", "w"),  # noqa: SIM115  (the child writes it for its whole life)
            text=True,
        )
        self.err = tmp / "paddlex.err"
        hello = self._read()
        self.found = hello["found"]

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError("PaddleX side died: " + self.err.read_text()[-1500:])

    def time_ms(self, what: str, case: int) -> float:
        self.proc.stdin.write(json.dumps({"what": what, "case": case}) + "\n")
        self.proc.stdin.flush()
        return self._read()["ms"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


ONEDNN_OPS = {"conv2d", "depthwise_conv2d", "batch_norm", "relu", "elementwise_add", "add"}


class WhitelistEngine:
    """NOT the product's engine: what inference/paddle_engine.py would give with oneDNN limited to an op
    whitelist (``Config.set_mkldnn_op``). Paddle 3.3.1 cannot run ``nearest_interp`` (float64-array
    attribute) under oneDNN in PIR graphs; keeping that op on the native kernel lets the
    convolutions run on oneDNN, where a batch is computed as a batch. Benchmark-only."""

    def __init__(self, bundle, threads: int) -> None:
        from paddle import inference

        c = inference.Config(str(bundle.model_file), str(bundle.params_file))
        c.disable_gpu()
        c.enable_mkldnn()
        c.set_mkldnn_cache_capacity(10)
        c.set_mkldnn_op(ONEDNN_OPS)
        c.set_cpu_math_library_num_threads(threads)
        c.enable_new_ir(True)
        c.enable_new_executor()
        c.enable_memory_optim()
        c.disable_glog_info()
        self._p = inference.create_predictor(c)
        self.input_names = list(self._p.get_input_names())
        self._outs = [self._p.get_output_handle(n) for n in self._p.get_output_names()]
        self.onednn = "whitelist"

    def run(self, feeds):
        for name in self.input_names:
            h = self._p.get_input_handle(name)
            h.reshape(feeds[name].shape)
            h.copy_from_cpu(feeds[name])
        self._p.run()
        return [o.copy_to_cpu() for o in self._outs]


def once_ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def summary(times: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(times), 2), "min": round(min(times), 2)}


def ratio(slow: dict[str, float], fast: dict[str, float]) -> dict[str, float]:
    return {k: round(slow[k] / fast[k], 2) for k in ("median", "min")}


def scenes(tmp: Path, counts: list[int], size: tuple[int, int]) -> list[dict]:
    import cv2

    from tools.train_pose.scenes import generate_scene

    out = []
    for n in counts:
        for seed in range(1000 + 100 * n, 2000 + 100 * n):  # first seed whose scene keeps n labelled persons
            img, persons = generate_scene(seed, size=size, min_persons=n, max_persons=n)
            if len(persons) == n:
                break
        path = tmp / f"scene_{n}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        # read back what both sides will decode, so pixels are identical
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        out.append(
            {
                "persons": n,
                "seed": seed,
                "image": str(path),
                "rgb": rgb,
                "boxes": [[float(v) for v in p.bbox] for p in persons],
            }
        )
    return out


def bundles(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path, str]:
    if args.det and args.kpt:
        return Path(args.det), Path(args.kpt), "given"
    det, kpt = REPO / "models" / "person_det_synthetic", REPO / "models" / "tinypose_synthetic"
    if (det / "inference.yml").exists() and (kpt / "inference.yml").exists():
        return det, kpt, "demo"
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from test_keypoint_service import export_toy_bundles

    toy = export_toy_bundles(tmp / "toy")
    return toy["det"], toy["pose"], "toy"


def paddlex_python() -> str | None:
    proc = subprocess.run(["bash", str(REPO / "tools" / "paddlex_env.sh")], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--det")
    ap.add_argument("--kpt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--persons", default="1,4,8")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--size", default="640x480", help="scene size WxH")
    ap.add_argument("--skip-paddlex", action="store_true", help="only our side (no .paddlex-venv)")
    ap.add_argument(
        "--kpt-onednn",
        choices=("auto", "on", "off", "whitelist"),
        default="auto",
        help="our keypoint engine's oneDNN: auto = the bundle manifest's verified choice; "
        "whitelist = oneDNN for convolution-type ops only (see WhitelistEngine)",
    )
    args = ap.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")

    from visionpack.config import ServiceConfig
    from visionpack.inference.det_postprocess import DetBox
    from visionpack.inference.engine import create_engine
    from visionpack.services import build_service
    from visionpack.services.keypoint import KptRequest

    with tempfile.TemporaryDirectory(prefix="bench_kpt_") as t:
        tmp = Path(t)
        det, kpt, source = bundles(args, tmp)
        size = tuple(int(v) for v in args.size.lower().split("x"))
        cases = scenes(tmp, [int(x) for x in args.persons.split(",")], size)
        cfg = ServiceConfig(
            deploy="bench",
            service="keypoint",
            threads_per_worker=args.threads,
            models={"detector": str(det), "keypoint": str(kpt)},
        )

        def factory(bundle, c):
            # oneDNN for our keypoint engine only; PaddleX never uses it for PP-TinyPose (its blocklist).
            if bundle.path == Path(kpt) and args.kpt_onednn == "whitelist":
                return WhitelistEngine(bundle, args.threads)
            if bundle.path == Path(kpt) and args.kpt_onednn != "auto":
                c = dataclasses.replace(c, onednn=args.kpt_onednn == "on")
            return create_engine(bundle, c)

        svc = build_service(cfg, factory)
        pipe = svc.pipeline  # top-down: the detector and keypoint stages are its methods
        svc.warmup()
        pdx, error = None, None
        if not args.skip_paddlex:
            python = paddlex_python()
            if python is None:
                error = "no PaddleX env (bash tools/paddlex_env.sh failed)"
            else:
                # PaddleX needs a model name it knows; the bundles' Global.model_name is exactly that.
                pdx = PaddleXSide(
                    python,
                    {
                        "det": str(det),
                        "kpt": str(kpt),
                        "det_name": pipe.det_bundle.model_name,
                        "kpt_name": pipe.kpt_bundle.model_name,
                        "threads": args.threads,
                        "threshold": args.threshold,
                        "cases": [{"image": c["image"], "boxes": c["boxes"]} for c in cases],
                    },
                    tmp,
                )

        contenders = {}
        for i, case in enumerate(cases):
            img = case["rgb"]
            boxes = [DetBox(0, "person", 1.0, *b) for b in case["boxes"]]
            req = KptRequest(img, args.threshold, False)
            contenders[i] = {
                "ours_batched_ms": lambda img=img, boxes=boxes: once_ms(lambda: pipe.keypoints(img, boxes)),
                "ours_one_by_one_ms": lambda img=img, boxes=boxes: once_ms(
                    lambda: [pipe.keypoints(img, [b]) for b in boxes]
                ),
                "ours_e2e_ms": lambda req=req: once_ms(lambda: svc.predict(req)),
            }
            if pdx:
                contenders[i]["paddlex_stage_ms"] = lambda i=i: pdx.time_ms("stage", i)
                contenders[i]["paddlex_e2e_ms"] = lambda i=i: pdx.time_ms("e2e", i)
        times: dict[int, dict[str, list[float]]] = {i: {k: [] for k in c} for i, c in contenders.items()}
        for r in range(args.warmup + args.rounds):
            for i, fns in contenders.items():
                for name, fn in fns.items():
                    ms = fn()
                    if r >= args.warmup:
                        times[i][name].append(ms)
        rows = []
        for i, case in enumerate(cases):
            row = {"persons": case["persons"], "scene_seed": case["seed"]}
            row.update({k: summary(v) for k, v in times[i].items()})
            row["ours_persons_found"] = len(svc.predict(KptRequest(case["rgb"], args.threshold, False)).persons)
            row["batching_gain_vs_one_by_one"] = ratio(row["ours_one_by_one_ms"], row["ours_batched_ms"])
            if pdx:
                row["paddlex_persons_found"] = pdx.found[i]
                row["stage_speedup_vs_paddlex"] = ratio(row["paddlex_stage_ms"], row["ours_batched_ms"])
                row["e2e_speedup_vs_paddlex"] = ratio(row["paddlex_e2e_ms"], row["ours_e2e_ms"])
            rows.append(row)
        if pdx:
            pdx.close()
    result = {
        "benchmark": "keypoint",
        "bundles": {"source": source, "detector": str(det), "keypoint": str(kpt)},
        "threads": args.threads,
        "rounds": args.rounds,
        "onednn": {"detector": pipe.det_engine.onednn, "keypoint": pipe.kpt_engine.onednn, "paddlex": False},
        "detThreshold": args.threshold,
        "image_size": list(size),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    if error:
        result["paddlex_error"] = error
    eight = [r for r in rows if r["persons"] == 8 and "stage_speedup_vs_paddlex" in r]
    if eight:
        result["target_8_persons_stage_speedup_ge_2"] = eight[0]["stage_speedup_vs_paddlex"]["median"] >= 2.0
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
