"""Sockets and HTTP probes for real: /proc/net/tcp listeners and their owners, reachability on
this host's own addresses (never another host), and the per-service answer judges."""

from __future__ import annotations

import http.server
import os
import socket
import sys
import threading

import pytest

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import (  # noqa: E402
    http as diag_http,  # noqa: E402
    ports,
    procfs,
)
from vp_diag.core import Context, Deploy  # noqa: E402


def test_listener_and_owner_from_proc():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        mine = [sock for sock in procfs.listeners() if sock.port == port]
        assert [sock.address for sock in mine] == ["127.0.0.1"]
        assert procfs.socket_owners({mine[0].inode})[mine[0].inode] == [os.getpid()]


def test_covers():
    assert ports.covers("0.0.0.0", "127.0.0.1") and ports.covers("::", "0.0.0.0")
    assert not ports.covers("127.0.0.1", "0.0.0.0") and not ports.covers("0.0.0.0", "::1")


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"alive": true}')

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    servers = []

    def start(host):
        srv = http.server.HTTPServer((host, 0), _Health)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv.server_address[1]

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _ctx(tmp_path):
    return Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")


def _deploy(tmp_path, host, port):
    return Deploy(
        root=tmp_path, name="d", state={"host": host, "port": port, "release": "1", "service": "classification"}
    )


own = procfs.own_addresses()


def test_own_addresses_are_not_loopback():
    assert own, "the test host has a non-loopback interface address"
    assert not [a for a in own if a.startswith("127.") or a == "::1"]


def test_reachable_on_own_addresses(tmp_path, server):
    port = server("0.0.0.0")
    r = diag_http.reach_check(_ctx(tmp_path), _deploy(tmp_path, "0.0.0.0", port), own)
    assert r.status == "PASS" and [a for a in own if ":" not in a][0] in r.detail


def test_configured_wildcard_but_bound_to_loopback_fails(tmp_path, server):
    port = server("127.0.0.1")
    r = diag_http.reach_check(_ctx(tmp_path), _deploy(tmp_path, "0.0.0.0", port), own)
    assert r.status == "FAIL" and "own address" in r.detail
    assert f"ss -ltn 'sport = :{port}'" in r.fix


def test_loopback_deploys_are_not_probed_elsewhere(tmp_path):
    r = diag_http.reach_check(_ctx(tmp_path), _deploy(tmp_path, "127.0.0.1", 1), own)
    assert r.status == "PASS" and r.detail.startswith("listens on loopback only")
    # A specific address that is not this host's: nothing is sent anywhere.
    assert diag_http.targets("198.51.100.7", own) == []


def test_answer_judges_for_each_service():
    cls, kpt, face = (diag_http.INFERENCE[s][3] for s in ("classification", "keypoint", "face"))
    assert cls({"log_id": 1, "results": [{"name": "tabby", "score": 0.5}]})[0] == "PASS"
    assert cls({"log_id": 1, "results": []})[0] == "WARN"
    assert kpt({"log_id": 1, "person_num": 0, "person_info": []}) == ("PASS", "0 person(s) found")
    assert kpt({"log_id": 1})[0] == "FAIL"
    assert face({"log_id": 1, "result": {"face_num": 1, "face_list": []}}) == ("PASS", "1 face(s) found")
    assert face({"log_id": 1, "result": {"face_num": 0, "face_list": []}})[0] == "WARN"
    assert diag_http.INFERENCE["face"][0][0] == "faces/obama_2.jpg"
    assert (REPO / "package" / "samples" / "faces" / "obama_2.jpg").is_file()
