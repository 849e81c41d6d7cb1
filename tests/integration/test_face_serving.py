"""The face service under real gunicorn: the seed's Python client unchanged, and two workers in step.

The seed client (shared/seeds/001_...txt, PaddleX's face-recognition serving example) talks to
``http://0.0.0.0:8080``; it runs here byte for byte. To own port 8080 without colliding with
anything on the machine, server and client run in a private network namespace (``unshare -n``,
loopback only) when we are root; otherwise on the host if 8080 is free.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import yaml

from tests.paths import SEEDS

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "package" / "samples" / "faces"
SEED = SEEDS / "001_2afddc544cbbab0f.txt"
VENV_BIN = Path(sys.executable).parent
MODELS = {
    "detector_pnet": "mtcnn_pnet",
    "detector_rnet": "mtcnn_rnet",
    "detector_onet": "mtcnn_onet",
    "feature": "dlib_resnet_face",
}


def seed_client() -> str:
    text = SEED.read_text(encoding="utf-8")
    blocks = re.findall(r'<pre><code class="language-python">(.*?)</code></pre>', text, re.S)
    client = next(html.unescape(b) for b in blocks if "face-recognition-index-build" in b)
    assert 'API_BASE_URL = "http://0.0.0.0:8080"' in client
    return client


def client_python() -> str:
    """An interpreter with ``requests`` (the client's one dependency): the client is the user's
    program, run with the user's Python -- ours if it has requests, else the machine's python3."""
    for py in (sys.executable, shutil.which("python3"), shutil.which("python")):
        if py and subprocess.run([py, "-c", "import requests"], capture_output=True).returncode == 0:
            return py
    raise AssertionError("no Python with 'requests' to run the seed client (pip install requests)")


def write_config(tmp: Path, port: int) -> Path:
    cfg = {
        "deploy": "demo-face",
        "service": "face",
        "host": "127.0.0.1",
        "port": port,
        "workers": 2,
        "models": {role: str(REPO / "models" / name) for role, name in MODELS.items()},
        "data_dir": str(tmp / "data"),
        "run_dir": str(tmp / "run"),
        "log_dir": str(tmp / "logs"),
    }
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def gunicorn_cmd(config: Path, port: int, access_log: Path) -> list[str]:
    return [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        "2",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "%(p)s %(U)s %(s)s",
        "visionpack.api.app:create_app()",
    ]


def env(config: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VISIONPACK_CONFIG": str(config),
        "PYTHONPATH": str(REPO / "package"),
        "OMP_NUM_THREADS": "1",
        "GLOG_minloglevel": "2",
    }


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn exited during start"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("service not ready in time")


# Runs inside the namespace: loopback up, gunicorn on 8080, the seed client, gunicorn down.
DRIVER = textwrap.dedent("""
    import json, subprocess, sys, time, urllib.request, os, signal
    spec = json.loads(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    server = subprocess.Popen(spec["server"], env=spec["env"], stdout=open(spec["log"], "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                sys.exit("gunicorn exited during start")
            try:
                if urllib.request.urlopen("http://127.0.0.1:8080/ready", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("not ready")
            time.sleep(0.5)
        client = subprocess.run(
            [spec["python"], "client.py"], cwd=spec["cwd"], capture_output=True, text=True, timeout=300
        )
        print(json.dumps({"rc": client.returncode, "out": client.stdout, "err": client.stderr}))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
""")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_the_seed_python_client_runs_unchanged(tmp_path):
    work = tmp_path / "client"
    work.mkdir()
    (work / "client.py").write_text(seed_client())
    # demo0..2 build the index (ID0 Collins, ID1 Biden, ID2 Obama), demo3 adds Obama again,
    # id 1 (Biden) is removed, demo4 (a third Obama photo) is recognised.
    for i, name in enumerate(("collins.jpg", "biden.jpg", "obama_1.jpg", "obama_3.jpg", "obama_2.jpg")):
        shutil.copy(FACES / name, work / f"demo{i}.jpg")
    config = write_config(tmp_path, 8080)
    spec = {
        "server": gunicorn_cmd(config, 8080, tmp_path / "access.log"),
        "env": env(config),
        "log": str(tmp_path / "gunicorn.log"),
        "python": client_python(),
        "cwd": str(work),
    }
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        cmd = ["unshare", "-n", sys.executable, "-c", DRIVER, json.dumps(spec)]
    else:
        assert port_free(8080), "port 8080 is taken and no network namespace is available"
        cmd = [
            sys.executable,
            "-c",
            DRIVER.replace('subprocess.run(["ip"', 'None and subprocess.run(["ip"'),
            json.dumps(spec),
        ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr + (tmp_path / "gunicorn.log").read_text()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    out = result["out"]
    print(out)
    assert result["rc"] == 0, out + result["err"]
    lines = out.splitlines()
    assert lines[:4] == [
        "Number of images indexed: 3",
        "Number of images indexed: 4",
        "Number of images indexed: 3",
        "Output image saved at ./out.jpg",
    ]
    assert lines[4:6] == ["", "Detected faces:"]
    faces = eval(" ".join(lines[6:]))  # pprint of a list of dicts from the client
    best = max(faces, key=lambda f: f["score"])
    assert [r["label"] for r in best["recResults"]] == ["ID2"] and best["recResults"][0]["score"] > 0.9
    assert (work / "out.jpg").read_bytes()[:2] == b"\xff\xd8"


def post(port: int, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_an_add_through_one_worker_is_seen_by_the_next_search_on_the_other(tmp_path):
    import base64

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path, port)
    access = tmp_path / "access.log"
    proc = subprocess.Popen(
        gunicorn_cmd(config, port, access),
        env=env(config),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gunicorn.log", "w"),  # noqa: SIM115  (the child writes it for its whole life)
        start_new_session=True,
    )
    try:
        wait_ready(port, proc)
        img = lambda name: base64.b64encode((FACES / name).read_bytes()).decode()  # noqa: E731
        probe = {"image": img("obama_2.jpg"), "visualize": False}
        # Both workers load the (empty) default index first.
        for _ in range(6):
            faces = post(port, "/face-recognition-infer", probe)["result"]["faces"]
            assert all(f["recResults"] == [] for f in faces)
        added = post(port, "/demo-face/FaceGallery/add", {"image": img("obama_1.jpg"), "user_id": "obama"})
        assert added["result"]["face_found"] is True
        mark = len(access.read_text().splitlines())
        pids, tries = set(), 0
        while len(pids) < 2 and tries < 60:
            tries += 1
            faces = post(port, "/face-recognition-infer", probe)["result"]["faces"]
            best = max(faces, key=lambda f: f["score"])
            assert [r["label"] for r in best["recResults"]] == ["obama"], f"search {tries} missed the add"
            time.sleep(0.05)
            lines = access.read_text().splitlines()[mark:]
            pids = {ln.split()[0] for ln in lines if "/face-recognition-infer" in ln}
        assert len(pids) == 2, "every post-add search came from one worker; cannot show cross-worker freshness"
        # And a removal through one worker is honoured by both.
        post(port, "/demo-face/FaceGallery/remove", {"user_id": "obama"})
        for _ in range(6):
            faces = post(port, "/face-recognition-infer", probe)["result"]["faces"]
            assert all(f["recResults"] == [] for f in faces)
        # The quick start's seeding script: adds the sample gallery once, then recognises.
        seed = [sys.executable, str(FACES / "seed_gallery.py"), "--port", str(port)]
        first = subprocess.run(seed, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        assert first.stderr.count("added ") == 4
        answer = json.loads(first.stdout)["result"]
        assert answer["face_num"] == 1 and answer["face_list"][0]["user_list"][0]["user_id"] == "Barack_Obama"
        again = subprocess.run(seed, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "added " not in again.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
