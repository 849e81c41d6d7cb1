"""The installer's probes carry access/probe.py's key: GET /ready (procs.get_ready) and the sample
inference that proves a release (health.prove) send the headers they are given, on a real socket."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from visionpack.errors import StartFailed
from visionpack.installer import health, procs

REPO = Path(__file__).resolve().parents[3]


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []
    refuse_without_key = False

    def _answer(self, body: dict) -> None:
        key = self.headers.get("X-API-Key")
        _Recorder.seen.append((self.command, self.path, key))
        if self.refuse_without_key and not key:
            status, body = 401, {"error_code": 110, "error_msg": "Access token invalid or no longer valid"}
        else:
            status = 200
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):  # noqa: N802
        self._answer({"ready": True, "deploy": "d", "release": "r"})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer({"log_id": 1, "results": [{"name": "tiger cat", "score": 0.5}]})

    def log_message(self, *a):
        pass


@pytest.fixture
def port():
    _Recorder.seen, _Recorder.refuse_without_key = [], False
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_get_ready_sends_the_headers(port):
    status, body = procs.get_ready("127.0.0.1", port, headers={"X-API-Key": "vpk_probe"})
    assert (status, body["release"]) == (200, "r")
    assert _Recorder.seen == [("GET", "/ready", "vpk_probe")]
    procs.get_ready("127.0.0.1", port)
    assert _Recorder.seen[-1] == ("GET", "/ready", None)


@pytest.fixture
def release(tmp_path):
    samples = tmp_path / "package" / "samples"
    samples.mkdir(parents=True)
    shutil.copy2(REPO / "package" / "samples" / "cat.jpg", samples / "cat.jpg")
    return tmp_path


def test_prove_sends_the_headers(port, release):
    _Recorder.refuse_without_key = True
    proof = health.prove("classification", "d", release, port, headers={"X-API-Key": "vpk_probe"})
    assert "tiger cat" in proof
    assert _Recorder.seen == [("POST", "/d/ImageClassification", "vpk_probe")]


def test_prove_without_the_key_fails_with_the_answer(port, release):
    _Recorder.refuse_without_key = True
    with pytest.raises(StartFailed, match="HTTP 401.*110"):
        health.prove("classification", "d", release, port)


@pytest.mark.parametrize("policy, via", [("key", "key"), ("loopback", "loopback")])
def test_docker_start_probes_with_a_one_off_key_only_when_ops_wants_one(tmp_path, monkeypatch, policy, via):
    from visionpack.access import store
    from visionpack.access.model import decide
    from visionpack.installer.layout import Root
    from visionpack.installer.runtimes import docker_containers as dr

    paths = Root(tmp_path).deploy("d")
    store.set_policy(paths.data, "ops", policy)
    seen = {}
    monkeypatch.setattr(dr, "spec_for", lambda *a, **k: "spec")
    monkeypatch.setattr(dr, "image_id_or_tag", lambda *a, **k: "image")
    monkeypatch.setattr(dr, "image_ref", lambda top: "ref")

    def fake_run(client, spec, p, *, host, port, timeout, say, headers):
        seen["headers"] = dict(headers)
        seen["grant"] = decide(store.load(p.data), "ops", "127.0.0.1", headers.get("X-API-Key"))
        return {"started": True}

    monkeypatch.setattr(dr, "run", fake_run)
    assert dr.start(paths, tmp_path, tmp_path / "release", "1", host="0.0.0.0", port=1, client=object()) == {
        "started": True
    }
    assert seen["grant"].via == via and bool(seen["headers"]) == (policy == "key")
    assert store.load(paths.data).keys == ()  # the probe key is gone
