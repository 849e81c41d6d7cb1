"""The WSGI side of the HTTP front: a complete request as a WSGI environ, the app's answer as bytes.

Runs in the front's request threads (api/front.py): by the time it is called the body is whole
in memory, so ``wsgi.input`` never blocks on a client.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable
from typing import Any, Callable
from urllib.parse import unquote_to_bytes

import h11

from ..errors import InternalError
from . import envelopes as E

Answer = tuple[int, bytes, list[tuple[bytes, bytes]], bytes]


def environ(
    req: h11.Request, body: bytes, too_large: int | None, peer: tuple[str, int], server: Any, *, multiprocess: bool
) -> dict[str, Any]:
    """PEP 3333 environ of a request read whole; ``visionpack.body_too_large`` when its body was
    over the limit (then discarded: the app answers 336004 in its route's dialect)."""
    path, _, query = req.target.partition(b"?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": req.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": req.target.decode("latin-1"),
        "SERVER_NAME": str(server[0]) if isinstance(server, tuple) else "",
        "SERVER_PORT": str(server[1]) if isinstance(server, tuple) else "",
        "SERVER_PROTOCOL": "HTTP/" + req.http_version.decode("ascii"),
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": str(peer[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
    }
    if too_large is not None:
        env["visionpack.body_too_large"] = too_large
    for name, value in req.headers:
        key = name.decode("latin-1").upper()
        if "_" in key:
            continue  # X_Api_Key would shadow X-Api-Key in the environ: dropped, as nginx does
        key = key.replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE":
            env["CONTENT_TYPE"] = text
        elif key in ("CONTENT_LENGTH", "TRANSFER_ENCODING", "EXPECT"):
            continue  # the body is already whole: its framing is not the app's business
        else:
            http_key = "HTTP_" + key
            env[http_key] = env[http_key] + "," + text if http_key in env else text
    return env


def call(app: Callable[..., Iterable[bytes]], env: dict[str, Any], log: Any) -> Answer:
    """Run the app on ``env``; (status, reason, headers, body)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started[:] = [status, headers]
        return lambda _data: None  # the legacy write() callable; Flask never uses it

    try:
        result = app(env, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status_line, headers = started
    except Exception as exc:  # the app answers its own errors; this is a bug beneath it
        doc = E.front_error(InternalError(type(exc).__name__))
        log.exception("log_id=%s front: the app failed", doc["log_id"])
        return 500, b"Internal Server Error", [(b"content-type", b"application/json")], json.dumps(doc).encode()
    code, _, reason = status_line.partition(" ")
    return (
        int(code),
        reason.encode("latin-1"),
        [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        payload,
    )
