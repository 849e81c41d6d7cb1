"""Routes: parse the envelope, then decode -> predict -> encode on the service. Nothing else.

Every inference route goes through :func:`handle`, which owns the cross-cutting parts in one
place: the API key check, the license verdict, the per-worker in-flight bound, metrics and the
error envelope. :func:`operation_blueprint` binds a service's routes (path -> operation name)
to its operations once, at start. :class:`WorkerState` is what one worker's routes share.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..access import guard as access
from ..access.scopes import OPS, route_scope
from ..errors import (
    AccessTokenInvalid,
    ImageSizeInvalid,
    InternalError,
    InvalidArgument,
    LicenseError,
    NoPermission,
    ServiceUnavailable,
    VisionpackError,
)
from ..services.protocol import Operation, Service
from . import csrf, envelopes as E
from .jsonbody import parse_object

log = logging.getLogger("visionpack.api")

# Bytes a JSON envelope may add around a maximal base64 image (keys, other fields, padding).
ENVELOPE_SLACK = 64 * 1024


class WorkerState:
    """Per-worker state the routes share: service, gate, limiter, metrics."""

    def __init__(
        self, cfg: Any, service: Service, gate: Any, metrics: Any, backends: dict[str, Any] | None = None
    ) -> None:
        self.cfg = cfg
        self.service = service
        self.gate = gate
        self.metrics = metrics
        # role -> {"backend", "model", "precision", "threads"}: what this worker's engines run (app.py).
        self.backends: dict[str, Any] = backends or {}
        self.slots = threading.BoundedSemaphore(cfg.max_inflight)
        self.access = access.AccessGuard.for_config(cfg)
        self.ready_error: str | None = None


def worker() -> WorkerState:
    state: WorkerState = current_app.extensions["visionpack"]
    return state


def read_json(max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or the documented error (api/jsonbody.py)."""
    too_large = request.environ.get("visionpack.body_too_large")
    if too_large:  # the HTTP front refused or drained the body and passes only its size
        raise ImageSizeInvalid(f"request body is {too_large} bytes")
    length = request.content_length
    if length is not None and length > max_bytes + ENVELOPE_SLACK:
        raise ImageSizeInvalid(f"request body is {length} bytes")
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:  # a body without Content-Length that ran past the limit
        raise ImageSizeInvalid("request body is over the limit") from None
    if len(raw) > max_bytes + ENVELOPE_SLACK:
        raise ImageSizeInvalid(f"request body is {len(raw)} bytes")
    mimetype = request.mimetype or ""
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise InvalidArgument("send the body as JSON (Content-Type: application/json), not a form")
    return parse_object(raw)


def error_answer(err: VisionpackError, status: int | None, exc_info: Any = None) -> tuple[Response, int]:
    """An error met outside :func:`handle` (app.py's error handlers): in the matched route's
    dialect (routes name themselves easydl_* / paddlex_*), else in both dialects at once with
    the HTTP ``status``; logged with its log id."""
    route = (request.endpoint or "").rsplit(".", 1)[-1]
    if status is None and route.startswith("easydl_"):
        log_id: Any = E.easydl_log_id()
        body, status = E.easydl_error(err)
        body = {"log_id": log_id, **body}
    elif status is None and route.startswith("paddlex_"):
        log_id = E.paddlex_log_id()
        body, status = E.paddlex_error(log_id, err)
    else:
        log_id = E.easydl_log_id()
        body = E.front_error(err, log_id, status)
        status = status or err.http_status
    level = logging.ERROR if exc_info is not None else logging.INFO
    log.log(level, "log_id=%s route=%s %s %s", log_id, route or "-", err.slug, err.detail, exc_info=exc_info)
    return jsonify(body), status


def operation_blueprint(name: str, service: Service, routes: Sequence[tuple[str, str, str]], deploy: str) -> Blueprint:
    """A blueprint of POST routes ``(endpoint, path, operation name)`` (paths may hold
    ``{deploy}``), each view bound to its operation of ``service`` now: a route naming an
    operation the service lacks fails at start."""
    ops = service.operations()
    bp = Blueprint(name, __name__)
    for endpoint, path, op_name in routes:
        op = ops.get(op_name)
        if op is None:
            raise TypeError(
                f"{name} route {endpoint} needs operation {op_name!r}; service {service.kind!r} has {sorted(ops)}"
            )
        if not endpoint.startswith(f"{op.dialect}_"):  # error_answer reads the dialect off the endpoint
            raise TypeError(f"route {endpoint} serves a {op.dialect} operation: name it {op.dialect}_*")
        bp.add_url_rule(path.format(deploy=deploy), endpoint=endpoint, view_func=_view(endpoint, op), methods=["POST"])
    return bp


def _view(endpoint: str, op: Operation) -> Callable[[], tuple[Response, int]]:
    def view() -> tuple[Response, int]:
        return handle(endpoint, op)

    view.__name__ = endpoint
    return view


def handle(route: str, op: Operation) -> tuple[Response, int]:
    dialect = op.dialect
    r = worker()
    log_id: Any = E.easydl_log_id() if dialect == "easydl" else E.paddlex_log_id()
    started = time.perf_counter()
    r.metrics.start()
    code: int | str = 0
    acquired = False
    try:
        # Before the body is parsed and before the license gate and the in-flight slots: a
        # refused client costs a stat and a hash, nothing else. A browser's request from
        # another site is refused first, whatever its credentials (api/csrf.py).
        csrf.check_request(r.cfg.deploy)
        access.authorize_request(r.access, route_scope(route))
        if r.gate is not None:
            r.gate.check()
        acquired = r.slots.acquire(blocking=False)
        if not acquired:
            raise ServiceUnavailable(f"worker already has {r.cfg.max_inflight} requests in flight")
        body = read_json(r.cfg.max_image_b64_bytes)
        result = op.encode(r.service.predict(op.decode(body)))
        payload = E.easydl_ok(log_id, result) if dialect == "easydl" else E.paddlex_ok(log_id, result)
        status = 200
    except (AccessTokenInvalid, NoPermission) as err:
        access.log_refusal(log, log_id, route, err)
        payload, status = _error(dialect, log_id, err, route, logged=True)
        code = err.easydl_code if dialect == "easydl" else status
    except VisionpackError as err:
        payload, status = _error(dialect, log_id, err, route)
        code = err.easydl_code if dialect == "easydl" else status
    except Exception as exc:  # a bug must still answer in the envelope, and be logged with its log_id
        log.exception("log_id=%s route=%s internal error: %s", log_id, route, exc)
        payload, status = _error(dialect, log_id, InternalError(str(exc)), route, logged=True)
        code = InternalError.easydl_code if dialect == "easydl" else InternalError.http_status
    finally:
        if acquired:
            r.slots.release()
    r.metrics.observe(route, code, time.perf_counter() - started)
    resp = jsonify(payload)
    # The HTTP front's access log line carries it, so one id finds both lines (and a client
    # that logs headers has it even when it cannot parse the body).
    resp.headers["X-Log-Id"] = str(log_id)
    return resp, status


def _error(
    dialect: str, log_id: Any, err: VisionpackError, route: str, logged: bool = False
) -> tuple[dict[str, Any], int]:
    if not logged:
        level = logging.WARNING if isinstance(err, (LicenseError, ServiceUnavailable)) else logging.INFO
        reason = getattr(err, "reason", "")
        log.log(
            level,
            "log_id=%s route=%s %s %s%s",
            log_id,
            route,
            err.slug,
            err.detail,
            f" reason={reason}" if reason else "",
        )
    if dialect == "easydl":
        body, status = E.easydl_error(err)
        body = {"log_id": log_id, **body}
        return body, status
    return E.paddlex_error(log_id, err)


def readiness(r: WorkerState) -> tuple[bool, dict[str, Any]]:
    """``/ready``'s verdict and its detail (the console's overview shows the same)."""
    info: dict[str, Any] = {
        "deploy": r.cfg.deploy,
        "service": r.cfg.service,
        "release": r.cfg.release,
        "models": {role: b for role, b in r.cfg.models.items()},
        "backends": r.backends,
        "tuning": tuning_summary(r.cfg.tuning),
    }
    ok = r.service is not None and r.ready_error is None
    if not ok:
        info["reason"] = r.ready_error or "model not loaded"
    if r.gate is not None:
        try:
            verdict = r.gate.check()
            info["license"] = verdict.to_dict() if hasattr(verdict, "to_dict") else {"ok": True}
        except LicenseError as err:
            ok = False
            info["license"] = {"ok": False, "reason": err.reason, "detail": err.detail}
            info["reason"] = f"license: {err.reason}"
    sync = getattr(r.service, "sync_state", None)  # services with a shared store (face) say how current it is
    if callable(sync):
        info["gallery"] = sync()
    info["ready"] = ok
    return ok, info


def tuning_summary(tuning: Any) -> dict[str, Any]:
    """What install/upgrade measured (config ``tuning``): per role the choice and each backend's
    p50 in ms, or why it was not a candidate."""
    out: dict[str, Any] = {}
    for role, record in sorted(tuning.items()):
        measured = {
            kind: {"p50_ms": c.get("p50_ms"), "max_abs_diff": c.get("max_abs_diff")}
            if c.get("ok")
            else {"why": c.get("why")}
            for kind, c in sorted((record.get("candidates") or {}).items())
        }
        out[role] = {"chosen": record.get("backend"), "measured": measured}
    return out


def _ops_allowed(r: WorkerState) -> bool:
    try:
        access.authorize_request(r.access, OPS)
    except (AccessTokenInvalid, NoPermission):
        return False
    return True


def ops_blueprint() -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/health")
    def health() -> Response:
        # PaddleX's shape, so PaddleX health probes work unchanged.
        return jsonify({"logId": E.paddlex_log_id(), "errorCode": 0, "errorMsg": "Healthy"})

    @bp.get("/ready")
    def ready() -> tuple[Response, int]:
        r = worker()
        ok, info = readiness(r)
        if not _ops_allowed(r):
            # Without ops rights only the verdict: the detail names the license, customer and paths.
            # Never a refusal: load balancers and the installer poll readiness without a key.
            return jsonify({"ready": ok}), 200 if ok else 503
        return jsonify(info), 200 if ok else 503

    @bp.get("/metrics")
    def metrics() -> Response | tuple[Response, int]:
        r = worker()
        try:
            access.authorize_request(r.access, OPS)
        except (AccessTokenInvalid, NoPermission) as err:
            log_id = E.easydl_log_id()
            access.log_refusal(log, log_id, "metrics", err)
            # Neither dialect owns /metrics: both envelopes' fields, as for unknown paths.
            return jsonify(E.front_error(err, log_id)), err.http_status
        return Response(r.metrics.render(), mimetype="text/plain; version=0.0.4")

    return bp
