"""The services under real gunicorn with each inference backend forced (VISIONPACK_BACKEND, as an operator
would), and an ONNX-only bundle: same answers as Paddle, /ready says the backend, /metrics labels it,
and a worker loads only its own runtime -- checked in the worker process itself, from the libraries
mapped into it (/proc/<pid>/maps), so nothing in the service has to expose its modules.

Representative subset (CI time): classification on all three backends and the ONNX-only bundle;
face (MTCNN + dlib) and keypoint (detector + keypoint model) on onnxruntime and openvino, their
paddle runs being the existing suites (test_face_serving.py, test_keypoint_service.py).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.paths import PACKAGE, REPO

VENV_BIN = Path(sys.executable).parent
CAT = PACKAGE / "samples" / "cat.jpg"
SERVICES = {
    "classification": ("demo-classify", {"classifier": "efficientnet_lite0_imagenet"}),
    "face": (
        "demo-face",
        {
            "detector_pnet": "mtcnn_pnet",
            "detector_rnet": "mtcnn_rnet",
            "detector_onet": "mtcnn_onet",
            "feature": "dlib_resnet_face",
        },
    ),
    "keypoint": ("demo-keypoint", {"detector": "person_det_synthetic", "keypoint": "tinypose_synthetic"}),
}
# What each runtime maps into a process that imported it (paddle ships a libopenvino of its own: paths).
LIBRARIES = {
    "paddle": "/paddle/base/libpaddle",
    "onnxruntime": "/onnxruntime/capi/",
    "openvino": "/openvino/libs/libopenvino",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, tmp: Path, service: str, backend: str, models: dict[str, str]) -> None:
        self.port = free_port()
        self.deploy = SERVICES[service][0]
        cfg = {
            "deploy": self.deploy,
            "service": service,
            "port": self.port,
            "workers": 1,
            "threads_per_worker": 1,
            "models": models,
            "data_dir": str(tmp / "data"),
            "run_dir": str(tmp / "run"),
            "log_dir": str(tmp / "logs"),
            "console": False,
        }
        (tmp / "config.yml").write_text(yaml.safe_dump(cfg))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}
        env.update(VISIONPACK_CONFIG=str(tmp / "config.yml"), PYTHONPATH=str(PACKAGE), GLOG_minloglevel="2")
        if backend != "auto":
            env["VISIONPACK_BACKEND"] = backend  # the override an operator (or a forced suite run) uses
        cmd = [str(VENV_BIN / "gunicorn"), "--workers", "1", "--threads", "4", "--timeout", "120"]
        cmd += ["--bind", f"127.0.0.1:{self.port}", "visionpack.api.app:create_app()"]
        self.log = tmp / "gunicorn.log"
        log = open(self.log, "w")  # noqa: SIM115  (the child writes its log for its whole life)
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                status, body = self.get("/ready")
                if status == 200:
                    return json.loads(body)
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"not ready in time: {self.log.read_text()[-3000:]}")

    def worker_maps(self) -> str:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        assert len(children) == 1, children
        return Path(f"/proc/{children[0]}/maps").read_text()

    def classify(self) -> list[dict]:
        body = json.dumps({"image": base64.b64encode(CAT.read_bytes()).decode(), "top_num": 3}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{self.deploy}/ImageClassification",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["results"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def serve(tmp_path: Path, service: str, backend: str, models: dict[str, str] | None = None) -> Served:
    names = SERVICES[service][1]
    served = Served(tmp_path, service, backend, models or {r: str(REPO / "models" / n) for r, n in names.items()})
    return served


@pytest.fixture(scope="module")
def paddle_answer(tmp_path_factory):
    """The classification answer with Paddle: what every other backend must give."""
    served = serve(tmp_path_factory.mktemp("paddle"), "classification", "paddle")
    try:
        served.wait_ready()
        return served.classify(), served.worker_maps()
    finally:
        served.stop()


def only_runtime(maps: str, backend: str) -> None:
    for kind, lib in LIBRARIES.items():
        assert (lib in maps) == (kind == backend), (
            f"{kind}'s {lib} {'missing from' if kind == backend else 'in'} the worker"
        )


def test_paddle_serves_with_paddle_alone(paddle_answer):
    results, maps = paddle_answer
    assert results[0]["name"] and results[0]["score"] > 0.2
    only_runtime(maps, "paddle")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_forced_backend_answers_as_paddle_and_its_worker_never_imports_paddle(tmp_path, backend, paddle_answer):
    served = serve(tmp_path, "classification", backend)
    try:
        ready = served.wait_ready()
        assert ready["backends"]["classifier"]["backend"] == backend
        assert ready["backends"]["classifier"]["precision"] == "f32"
        assert ready["backends"]["classifier"]["device"] == "cpu"
        results = served.classify()
        want = paddle_answer[0]
        assert [r["name"] for r in results] == [r["name"] for r in want]
        assert abs(results[0]["score"] - want[0]["score"]) < 1e-4
        only_runtime(served.worker_maps(), backend)
        status, text = served.get("/metrics")
        assert status == 200
        label = (
            f'visionpack_inference_duration_seconds_count{{backend="{backend}",model="efficientnet_lite0_imagenet"}}'
        )
        assert label in text.decode()
    finally:
        served.stop()


def test_an_onnx_only_bundle_serves_with_the_yml_driven_processing(tmp_path, paddle_answer):
    bundle = tmp_path / "my_export"
    bundle.mkdir()
    for name in ("inference.onnx", "inference.yml"):
        shutil.copy2(REPO / "models" / "efficientnet_lite0_imagenet" / name, bundle / name)
    os.rename(bundle / "inference.onnx", bundle / "model.onnx")  # any *.onnx name
    served = serve(tmp_path, "classification", "auto", {"classifier": str(bundle)})
    try:
        ready = served.wait_ready()
        assert ready["backends"]["classifier"]["backend"] == "onnxruntime"  # its own format
        results = served.classify()
        assert [r["name"] for r in results] == [r["name"] for r in paddle_answer[0]]
        only_runtime(served.worker_maps(), "onnxruntime")
    finally:
        served.stop()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("service", ["face", "keypoint"])
def test_face_and_keypoint_warm_up_every_model_on_a_forced_backend(tmp_path, service, backend):
    served = serve(tmp_path, service, backend)
    try:
        ready = served.wait_ready()  # /ready comes after every model's warm-up inference
        assert {b["backend"] for b in ready["backends"].values()} == {backend}
        assert set(ready["backends"]) == set(SERVICES[service][1])
        only_runtime(served.worker_maps(), backend)
    finally:
        served.stop()
