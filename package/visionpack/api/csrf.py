"""Cross-site request refusal for every POST route: the Origin decision and the console's token.

A browser on the operator's machine is a loopback peer, so under the ``loopback`` policies it
may change the face gallery without a key; any site it visits could make it POST to the
service (a form, or ``fetch`` with ``mode: "no-cors"`` and a ``text/plain`` JSON body, which
needs no preflight). Two checks, both in routes.handle before the access check:

1. **Origin.** Browsers say where a request comes from: ``Sec-Fetch-Site`` (``cross-site`` or
   ``same-site`` is refused; ``same-site`` includes another port of the same host, e.g. another
   deploy) and ``Origin`` (refused unless it is this service's own ``scheme://host:port`` as the
   ``Host`` header names it; ``null`` is refused). API clients (curl, SDKs, the EasyDL and
   PaddleX clients) send neither header and are unaffected.
2. **The console's token** (double-submit cookie): a console page sets the HttpOnly,
   SameSite=Strict cookie ``vp_console_<deploy>`` to a random token and puts the same token in
   the page; the console's scripts send it as ``X-CSRF-Token``. A request carrying the cookie or
   the header must carry both, equal. Nothing but a page of this service can read the token.

Refusals are :class:`~visionpack.errors.NoPermission` (EasyDL 6, HTTP 403) with the reason
``cross-site`` or ``console-token`` for the log. Pure functions first, so the decision table is
unit-tested without a request.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import NoPermission
from ..services.fields import preview

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

TOKEN_HEADER = "X-CSRF-Token"
COOKIE_PREFIX = "vp_console_"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
REFUSED_SITES = ("cross-site", "same-site")


def cookie_name(deploy: str) -> str:
    """One cookie per deploy: cookies ignore ports, and several deploys share a host."""
    return COOKIE_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", deploy)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def valid_token(value: str | None) -> bool:
    return bool(value) and bool(_TOKEN.match(value or ""))


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, -1)


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the service the ``Host`` header names.

    The port of a Host without one is the Origin scheme's default, so the service behind a TLS
    proxy on 443 (``Origin: https://x``, ``Host: x``) is its own origin.
    """
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc or parts.path not in ("", "/"):
        return False
    mine = _host_port(host or "", scheme)
    theirs = _host_port(parts.netloc, scheme)
    return mine is not None and mine == theirs


def cross_site_reason(origin: str | None, fetch_site: str | None, host: str | None) -> str | None:
    """None when the request may be served; else why it is refused (a short, escaped text)."""
    if fetch_site is not None and fetch_site.strip().lower() in REFUSED_SITES:
        return f"Sec-Fetch-Site is {fetch_site.strip().lower()}"
    if origin is None:
        return None  # not a browser (or an old one on a same-origin request)
    if origin.strip().lower() == "null":
        return "Origin is null (a sandboxed page or a file)"
    if not same_origin(origin, host):
        return f"Origin {preview(origin)} is not this service ({preview(host or '')})"
    return None


def token_reason(cookie: str | None, header: str | None) -> str | None:
    """None when the console token is absent from both places (an API client) or the same in both."""
    if cookie is None and header is None:
        return None
    if not valid_token(cookie) or not valid_token(header):
        return "the console token is missing from the cookie or the X-CSRF-Token header"
    if not hmac.compare_digest(cookie or "", header or ""):
        return "the console token in X-CSRF-Token is not the cookie's"
    return None


def refusal(reason: str, detail: str) -> NoPermission:
    err = NoPermission("write", detail)
    err.reason = reason  # for log_refusal: the line says why, the client sees Baidu's code 6
    return err


def check(headers: Mapping[str, Any] | Headers, cookies: Mapping[str, Any], deploy: str) -> None:
    """NoPermission unless the request may act: not from another site, and with the console's
    token when it carries one."""
    why = cross_site_reason(headers.get("Origin"), headers.get("Sec-Fetch-Site"), headers.get("Host"))
    if why:
        raise refusal("cross-site", f"cross-site request refused: {why}")
    why = token_reason(cookies.get(cookie_name(deploy)), headers.get(TOKEN_HEADER))
    if why:
        raise refusal("console-token", f"request refused: {why}")


def check_request(deploy: str) -> None:
    """:func:`check` on the current Flask request (headers and cookies only, never the body)."""
    from flask import request

    check(request.headers, request.cookies, deploy)
