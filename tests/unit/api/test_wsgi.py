"""api/wsgi.py: the environ the HTTP front builds, and the app call around it."""

from __future__ import annotations

import h11
from flask import Flask, request

from visionpack.api import wsgi


def _req(target: bytes = b"/a%20b?x=1", headers=None) -> h11.Request:
    base = [(b"host", b"h"), (b"content-type", b"application/json"), (b"content-length", b"2")]
    return h11.Request(method=b"POST", target=target, headers=base + (headers or []))


def test_environ_carries_the_whole_body_the_peer_and_the_decoded_path():
    env = wsgi.environ(_req(), b"{}", None, ("10.1.2.3", 5555), ("127.0.0.1", 80), multiprocess=False)
    assert env["PATH_INFO"] == "/a b" and env["QUERY_STRING"] == "x=1"
    assert env["REMOTE_ADDR"] == "10.1.2.3" and env["wsgi.input"].read() == b"{}"
    assert env["CONTENT_TYPE"] == "application/json" and env["CONTENT_LENGTH"] == "2"
    assert "visionpack.body_too_large" not in env


def test_headers_with_underscores_are_dropped_so_they_cannot_shadow_dashed_ones():
    env = wsgi.environ(
        _req(headers=[(b"x_api_key", b"forged"), (b"x-api-key", b"real")]),
        b"",
        None,
        ("127.0.0.1", 1),
        None,
        multiprocess=True,
    )
    assert env["HTTP_X_API_KEY"] == "real"


def test_repeated_headers_are_joined_and_framing_headers_are_not_passed():
    env = wsgi.environ(
        _req(headers=[(b"x-a", b"1"), (b"x-a", b"2"), (b"expect", b"100-continue")]),
        b"",
        None,
        ("127.0.0.1", 1),
        None,
        multiprocess=False,
    )
    assert env["HTTP_X_A"] == "1,2" and "HTTP_EXPECT" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_an_over_limit_body_reaches_the_app_as_its_size_only():
    env = wsgi.environ(_req(), b"", 9_999_999, ("127.0.0.1", 1), None, multiprocess=False)
    assert env["visionpack.body_too_large"] == 9_999_999 and env["CONTENT_LENGTH"] == "0"


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def exception(self, msg, *args):
        self.lines.append(msg % args)


def test_call_returns_the_apps_status_headers_and_body():
    app = Flask("t")

    @app.post("/a b")
    def view():
        return {"got": request.get_json(), "peer": request.remote_addr}, 201

    env = wsgi.environ(_req(), b'{"k": 1}', None, ("10.0.0.9", 1), None, multiprocess=False)
    env["CONTENT_LENGTH"] = "8"
    status, reason, headers, body = wsgi.call(app.wsgi_app, env, _Log())
    assert status == 201 and reason == b"CREATED"
    assert (b"Content-Type", b"application/json") in headers
    assert b'"peer":"10.0.0.9"' in body and b'"k":1' in body


def test_an_app_that_raises_gets_a_500_envelope_and_a_log_line():
    def broken(environ, start_response):
        raise RuntimeError("secret internals")

    log = _Log()
    status, _, _, body = wsgi.call(broken, {}, log)
    assert status == 500 and b"secret internals" not in body and b'"error_code": 336000' in body
    assert log.lines and "log_id=" in log.lines[0]
