"""What ``install``/``start`` say about the address a deploy listens on, truthfully.

gunicorn binds exactly config.yml's ``host``: 0.0.0.0 (the default, like EasyDL: intranet
clients call the server) is every IPv4 interface, not just this machine, and saying
``http://127.0.0.1:PORT`` then would hide that the service is on the network. When it is, and
the deploy's gallery writes need no key (policy ``open``, access/), anyone who reaches the port
can change the face gallery: that is said as a warning.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Callable

from .procs import probe_host

WILDCARDS = ("0.0.0.0", "", "::")
GALLERY_SERVICES = ("face",)  # services with gallery write routes (api/routes_face.py)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int, path: str = "") -> str:
    h = f"[{host}]" if ":" in host else host
    return f"http://{h}:{port}/{path}"


def describe(host: str, port: int, deploy: str) -> str:
    """One line: where it listens, and the address to use from here and from elsewhere."""
    local = _url(probe_host(host), port, f"{deploy}/")
    if host in WILDCARDS:
        family = "IPv6 and IPv4" if host == "::" else "IPv4"
        return (
            f"listening on {_url(host or '0.0.0.0', port)} (every {family} interface of this machine: "
            f"clients elsewhere use http://<this server's address>:{port}/{deploy}/; from here {local})"
        )
    if is_loopback(host):
        return f"listening on {_url(host, port)} (this machine only): {local}"
    return f"listening on {_url(host, port)} (that interface only): {local}"


def gallery_policy(data_dir: Path) -> str | None:
    """The deploy's policy for gallery writes (open | loopback | key), None if unknown.

    Read through access/store.py (the credentials' module); a broken access file is not
    this message's business: status and the service say what is wrong with it.
    """
    try:
        from ..access import store
    except ImportError:  # a package without access control: nothing to say
        return None
    try:
        return store.load(data_dir).policies.get("gallery")
    except Exception:  # noqa: BLE001 - ConfigInvalid or an unreadable file: no warning rather than a failed start
        return None


def warning(host: str, port: int, service: str, data_dir: Path) -> str | None:
    """The warning for a deploy whose gallery anyone on the network may change, else None."""
    if is_loopback(host) or service not in GALLERY_SERVICES:
        return None
    if gallery_policy(data_dir) != "open":
        return None
    return (
        f"{host or '0.0.0.0'}:{port} is reachable from the network and gallery writes are open to "
        f"everyone: any client can add and remove faces. Restrict them ('install.py apikey policy DEPLOY "
        f"--scope gallery --policy loopback' or 'key'), or listen on 127.0.0.1 ('--host 127.0.0.1')"
    )


def announce(
    say: Callable[[str], None],
    warn: Callable[[str], None],
    *,
    deploy: str,
    service: str,
    host: str,
    port: int,
    data_dir: Path,
    pid: int,
) -> None:
    say(f"{deploy} is ready (pid {pid}), {describe(host, port, deploy)}")
    text = warning(host, port, service, data_dir)
    if text:
        warn(text)
