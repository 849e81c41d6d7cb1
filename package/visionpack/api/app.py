"""Flask app factory: ``gunicorn 'visionpack.api.app:create_app()'``.

gunicorn runs without ``--preload``, so this function executes in each worker *after* the
fork: the Paddle predictor created here belongs to that worker alone.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, cast

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from .. import config as config_mod
from ..bundle import Bundle
from ..errors import ImageSizeInvalid, InternalError, InvalidArgument, VisionpackError
from ..inference.engine import EngineFactory, create_engine, role_of, serialized
from ..services.fields import preview
from ..services.protocol import Service, check_service
from .console import console_blueprint
from .metrics import Metrics
from .routes import ENVELOPE_SLACK, WorkerState, error_answer, operation_blueprint, ops_blueprint


def create_app(
    cfg: config_mod.ServiceConfig | None = None,
    *,
    service: Service | None = None,
    engine_factory: EngineFactory | None = None,
    gate: Any = "auto",
) -> Flask:
    """Build the app for one deploy.

    Tests inject ``service`` (or a fake ``engine_factory``) and ``gate``; production passes
    nothing and gets the config from ``$VISIONPACK_CONFIG``, the Paddle engine and the
    license gate from the install root.
    """
    cfg = cfg or config_mod.load()
    _configure_logging(cfg)
    metrics_dir = os.path.join(cfg.run_dir, "metrics") if cfg.run_dir else None
    metrics = Metrics(metrics_dir)
    backends: dict[str, dict[str, Any]] = {}
    if service is None:
        from ..services import build_service

        service = build_service(cfg, _observed(engine_factory or create_engine, metrics, backends))
        service.warmup()
    else:
        service = check_service(service)
    metrics.batcher = getattr(service, "batcher", None)
    if gate == "auto":
        gate = build_gate(cfg)
    app = Flask("visionpack")
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_image_b64_bytes + ENVELOPE_SLACK
    provider = cast(DefaultJSONProvider, app.json)  # Flask's default provider, typed as the base class
    provider.ensure_ascii = False  # EasyDL error messages and labels may be Chinese
    provider.sort_keys = False
    app.extensions["visionpack"] = WorkerState(cfg, service, gate, metrics, backends)
    app.register_blueprint(ops_blueprint())
    # One routes table per service (api/routes_<service>.py), imported only when served.
    routes = importlib.import_module(f"{__package__}.routes_{cfg.service}")
    app.register_blueprint(operation_blueprint(cfg.service, service, routes.ROUTES, cfg.deploy))
    if cfg.console:  # the operator console: pages behind the ops scope, actions through the routes above
        app.register_blueprint(console_blueprint(cfg, routes.ROUTES))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
        # Routes turn an oversized body into 336004 themselves (routes.read_json); this answers
        # any other reader of a body, in the route's dialect when it has one.
        return error_answer(ImageSizeInvalid("request body too large"), None)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        # Unknown paths (404), wrong methods (405) and anything else Werkzeug raises: never its
        # HTML page, an envelope both dialects read, with a log id like every other answer.
        status = exc.code or 500
        if status >= 500:  # an exception outside routes.handle (Flask wraps it): log its trace
            err: VisionpackError = InternalError(exc.name)
            response = error_answer(err, status, exc_info=getattr(exc, "original_exception", None) or exc)
        else:
            err = InvalidArgument(f"{exc.name}: {request.method} {preview(request.path)}")
            response = error_answer(err, status)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response[0].headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    return app


def _observed(factory: EngineFactory, metrics: Metrics, backends: dict[str, dict[str, Any]]) -> EngineFactory:
    """``factory`` whose engines report each run's time to /metrics (by backend and model) and
    are listed for /ready (which backend runs which model, with what)."""

    def make(bundle: Bundle, cfg: config_mod.ServiceConfig) -> Any:
        engine = serialized(factory(bundle, cfg))
        backend = str(getattr(engine, "backend", "custom"))
        model = bundle.name
        if hasattr(engine, "on_run"):
            engine.on_run = lambda seconds: metrics.observe_inference(backend, model, seconds)
        role = role_of(bundle, cfg) or model
        backends[role] = {
            "backend": backend,
            "model": model,
            "precision": str(getattr(engine, "precision", "")),
            "threads": getattr(engine, "threads", None),
            "device": str(getattr(engine, "device", "cpu")),  # gpu:N on the GPU package (docs/gpu.md)
        }
        return engine

    return make


def build_gate(cfg: config_mod.ServiceConfig) -> Any:
    """The license gate for this deploy, or None when no license directory is configured."""
    if not cfg.license_dir:
        return None
    from ..licensing.gate import LicenseGate  # noqa: WPS433 (optional until licensing lands)

    return LicenseGate.for_service(cfg)


def _configure_logging(cfg: config_mod.ServiceConfig) -> None:
    """Our loggers write once per event: to logs/error.log (rotated, shared by every worker of
    the deploy) when the service has a log directory, else to stderr (tests, a shell)."""
    from .. import logs

    root = logging.getLogger("visionpack")
    if root.handlers:
        return
    if cfg.log_dir:
        os.makedirs(cfg.log_dir, exist_ok=True)
        handler = logs.file_handler(os.path.join(cfg.log_dir, "error.log"), cfg.log_max_bytes, cfg.log_backups)
        # Not also through the root logger: a handler there wrote every line a second time.
        root.propagate = False
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(logs.LINE_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
