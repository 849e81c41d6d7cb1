"""The console's routes: the pages under ``/console``, the overview's chart fragment, and the
static files under ``/console/static``.

Every page (and the fragment) passes the same ``ops`` check as ``/metrics`` and the detail of
``/ready``; a refused browser gets the key form (HTTP 401/403, no data at all), which keeps a
key in sessionStorage and loads the page again with ``X-API-Key``. The static files (CSS,
scripts, the logo) hold no data and are the same in every install, so they are open like
``/health``: the key form needs them. Pages are rendered by Jinja with autoescaping, and sent
with a Content-Security-Policy that allows only this origin's own scripts and styles, so
nothing a label, a log line or a config value holds can run as script. Actions are never
taken here: the pages' scripts call the deploy's API routes, with their checks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, abort, jsonify, make_response, render_template, request

from ...access import guard as access
from ...access.scopes import OPS
from ...errors import AccessTokenInvalid, NoPermission
from .. import csrf, envelopes as E
from ..routes import WorkerState, readiness, worker
from .charts import all_charts, numbers
from .errorlog import MAX_ENTRIES, recent_errors
from .history import History
from .overview import license_facts, model_rows, releases, running_workers
from .tryit import gallery_paths, paths_of, try_form

log = logging.getLogger("visionpack.api")

PAGES = (("overview", "Overview"), ("try", "Try it"), ("gallery", "Face gallery"), ("errors", "Recent errors"))
GALLERY_PAGE_SIZE = 24
ERRORS_DEFAULT = 50
# Only this origin's files; images also from data: (thumbnails, the uploaded photo) and blob:.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class Console:
    """What the pages of one worker share: the service's routes, its models, the metrics history."""

    def __init__(self, cfg: Any, routes: Sequence[tuple[str, str, str]]) -> None:
        self.cfg = cfg
        paths = paths_of(routes, cfg.deploy)
        self.form = try_form(paths)
        self.gallery = gallery_paths(paths)
        self.models = model_rows(cfg.models)
        self.history = History()
        self.pages = tuple((name, title) for name, title in PAGES if name != "gallery" or self.gallery)

    def has(self, page: str) -> bool:
        return any(name == page for name, _title in self.pages)

    def charts(self, r: WorkerState) -> dict[str, Any]:
        samples = self.history.record(r.metrics.render)
        windows = self.history.windows(samples)
        return {"charts": all_charts(windows), "numbers": numbers(samples, windows)}

    def context(self, page: str, r: WorkerState) -> dict[str, Any]:
        """A page's values (the template escapes every one of them)."""
        return {"overview": self._overview, "try": self._try, "gallery": self._gallery, "errors": self._errors}[page](r)

    def _overview(self, r: WorkerState) -> dict[str, Any]:
        ok, info = readiness(r)
        return {
            "ready": ok,
            "ready_reason": info.get("reason", ""),
            "models": model_rows(self.cfg.models, r.backends) if r.backends else self.models,
            "running": running_workers(),
            "releases": releases(self.cfg),
            "license": license_facts(info, r.gate is not None),
            **self.charts(r),
        }

    def _try(self, _r: WorkerState) -> dict[str, Any]:
        return {"form": self.form}

    def _gallery(self, _r: WorkerState) -> dict[str, Any]:
        return {"gallery": self.gallery, "page_size": GALLERY_PAGE_SIZE}

    def _errors(self, _r: WorkerState) -> dict[str, Any]:
        asked = request.args.get("n", type=int)  # None when absent or not a number
        n = max(1, min(ERRORS_DEFAULT if asked is None else asked, MAX_ENTRIES))
        entries = recent_errors(self.cfg.log_dir, n) if self.cfg.log_dir else []
        return {"entries": entries, "n": n, "no_logs": not self.cfg.log_dir}


def _refused(route: str) -> tuple[AccessTokenInvalid | NoPermission, int] | None:
    """None when the request holds the ops scope; else the refusal, logged with its log id."""
    try:
        access.authorize_request(worker().access, OPS)
    except (AccessTokenInvalid, NoPermission) as err:
        log_id = E.easydl_log_id()
        access.log_refusal(log, log_id, route, err)
        return err, log_id
    return None


def _token() -> tuple[str, bool]:
    """The console token of this browser (its cookie's, when well formed), and whether it is new."""
    current = request.cookies.get(csrf.cookie_name(worker().cfg.deploy))
    return (current, False) if current is not None and csrf.valid_token(current) else (csrf.new_token(), True)


def _html(body: str, status: int, token: str = "", new: bool = False) -> Response:
    resp = make_response(body, status)
    resp.headers["Cache-Control"] = "no-store"
    if new:
        # HttpOnly: scripts read the token from the page, never from the cookie; Strict: no
        # other site's request carries it (api/csrf.py).
        resp.set_cookie(csrf.cookie_name(worker().cfg.deploy), token, httponly=True, samesite="Strict", path="/")
    return resp


def console_blueprint(cfg: Any, routes: Sequence[tuple[str, str, str]]) -> Blueprint:
    """The console of a deploy whose service answers ``routes`` (api/routes_<service>.py ROUTES)."""
    console = Console(cfg, routes)
    here = os.path.dirname(__file__)
    bp = Blueprint(
        "console",
        __name__,
        template_folder=os.path.join(here, "templates"),
        static_folder=os.path.join(here, "static"),
        static_url_path="/console/static",
    )

    def common(page: str, token: str) -> dict[str, Any]:
        r = worker()
        return {
            "page": page,
            "pages": console.pages,
            "title": dict(PAGES)[page],
            "deploy": cfg.deploy,
            "service": cfg.service,
            "release": cfg.release,
            "token": token,
            "pid": os.getpid(),
            "workers": cfg.workers,
            "inflight_limit": cfg.max_inflight,
            "now": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()),
            "key_needed": False,
            "ops_policy": r.access.state().policies.get(OPS, ""),
        }

    def show(page: str) -> Response:
        if not console.has(page):
            abort(404)
        token, new = _token()
        refused = _refused(f"console_{page}")
        if refused is not None:
            err, log_id = refused
            html = render_template(
                "console/locked.html",
                page=page,
                pages=(),
                title="API key needed",
                deploy="",
                token="",
                log_id=log_id,
                code=err.easydl_code,
                message=err.easydl_msg,
                key_needed=True,
            )
            return _html(html, err.http_status)
        html = render_template(f"console/{page}.html", **common(page, token), **console.context(page, worker()))
        return _html(html, 200, token, new)

    @bp.get("/console")
    @bp.get("/console/")
    def index() -> Response:
        return show("overview")

    @bp.get("/console/<name>")
    def page(name: str) -> Response:
        return show(name)

    @bp.get("/console/overview/charts")
    def charts_fragment() -> Any:
        refused = _refused("console_charts")
        if refused is not None:
            err, log_id = refused
            return jsonify(E.front_error(err, log_id)), err.http_status
        return _html(render_template("console/_charts.html", **console.charts(worker())), 200)

    @bp.after_request
    def secure(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    return bp
