"""The face service under real gunicorn (2 workers, real models, real SQLite): an index key
deleted through one worker is gone on both, and hostile bodies over real sockets get their
documented answers with no stack trace in the log."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from test_face_serving import FACES, env, gunicorn_cmd, wait_ready, write_config


def send(port: int, path: str, data: bytes, method: str = "POST") -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data if method == "POST" else None,
        method=method,
        headers={"Content-Type": "application/json", "Connection": "close"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post(port: int, path: str, body: dict) -> tuple[int, dict]:
    return send(port, path, json.dumps(body).encode())


def test_delete_through_one_worker_and_hostile_bodies(tmp_path):
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
        img = base64.b64encode((FACES / "obama_1.jpg").read_bytes()).decode()
        probe = base64.b64encode((FACES / "obama_2.jpg").read_bytes()).decode()
        status, out = post(
            port, "/face-recognition-index-build", {"imageLabelPairs": [{"image": img, "label": "obama"}]}
        )
        assert status == 200, out
        key = out["result"]["indexKey"]

        def searches_from_both_workers(check) -> None:
            mark = len(access.read_text().splitlines())
            pids, tries = set(), 0
            while len(pids) < 2 and tries < 60:
                tries += 1
                check(*post(port, "/face-recognition-infer", {"image": probe, "indexKey": key, "visualize": False}))
                time.sleep(0.05)
                lines = access.read_text().splitlines()[mark:]
                pids = {ln.split()[0] for ln in lines if "/face-recognition-infer" in ln}
            assert len(pids) == 2, "every search came from one worker"

        def found(status, out):
            assert status == 200 and out["result"]["faces"][0]["recResults"][0]["label"] == "obama", out

        def gone(status, out):
            assert status == 422 and "unknown indexKey" in out["errorMsg"], out

        searches_from_both_workers(found)  # both workers now cache the index in memory
        status, out = post(port, "/demo-face/FaceGallery/group/delete", {"group_id": key})
        assert status == 200 and out["result"] == {"group_id": key, "removed_faces": 1}, out
        searches_from_both_workers(gone)
        status, out = post(port, "/face-recognition-index-delete", {"indexKey": key})
        assert status == 422 and out["errorCode"] == 422

        # Hostile bodies over real sockets: documented codes, short answers.
        hostile = [
            (b'{"image": "x", "max_face_num": NaN}', "/demo-face/FaceRecognition", 336002),
            (b"[" * 10_000 + b"]" * 10_000, "/demo-face/FaceRecognition", 336002),
            (b'{"start": ' + b"9" * 5000 + b"}", "/demo-face/FaceGallery/list", 336001),
            (b'{"start": 1e400}', "/demo-face/FaceGallery/list", 336001),
            (b'{"face_ids": [18446744073709551616]}', "/demo-face/FaceGallery/remove", 336001),
            (json.dumps({"user_id": "u", "image": "Z" * 200_000}).encode(), "/demo-face/FaceGallery/add", 336005),
        ]
        for data, path, code in hostile:
            status, out = send(port, path, data)
            assert status == 200 and out["error_code"] == code and isinstance(out["log_id"], int), (path, out)
            assert len(json.dumps(out)) < 300
        status, out = post(port, "/face-recognition-infer", {"image": "https://example.com/x.jpg"})
        assert status == 422 and "URL" in out["errorMsg"]
        for method, path, want in (("GET", "/no/such/path", 404), ("GET", "/face-recognition-infer", 405)):
            status, out = send(port, path, b"", method)
            assert status == want and out["errorCode"] == want and out["error_code"] == 336001
            assert out["logId"] == str(out["log_id"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log*"))
    assert "invalid-json" in logs  # the app log has the refusals (so the checks below look at it)
    logs += (tmp_path / "gunicorn.log").read_text(errors="replace")
    assert "Traceback" not in logs and "internal-error" not in logs
    assert "Z" * 100 not in logs  # the 200 KB field is not echoed into the log either
