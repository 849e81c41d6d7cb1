"""Containers (deploys whose state.json says ``runtime_kind`` docker, installer/runtimes/docker.py):
engine reachable, each labelled container running and healthy, not OOM-killed.

Spoken to through the Engine API on /var/run/docker.sock with http.client (stdlib), so the
docker CLI and SDK are not needed. Containers are found by the labels the installer sets:
``visionpack.deploy=<deploy>`` and ``visionpack.root=<root>``.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterable
from typing import Any

from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "docker"
ORDER = 35  # before processes: a container's pid file holds a pid of another pid namespace
SOCKET = "/var/run/docker.sock"


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def api(path: str, sock: str = SOCKET, timeout: float = 10.0) -> tuple[int | None, Any, str]:
    """(status, JSON, error) of GET ``path`` on the Engine API."""
    conn = _UnixHTTP(sock, timeout)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        resp = conn.getresponse()
        raw = resp.read()
    except OSError as exc:
        return None, None, exc.strerror or str(exc)
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw), ""
    except ValueError:
        return resp.status, raw.decode("utf-8", "replace"), ""


def containers(d: Deploy, sock: str = SOCKET) -> tuple[list[dict] | None, str]:
    filters = json.dumps({"label": [f"visionpack.deploy={d.name}", f"visionpack.root={d.root}"]})
    status, doc, err = api("/containers/json?all=1&filters=" + urllib.parse.quote(filters), sock)
    if status != 200 or not isinstance(doc, list):
        return None, err or f"HTTP {status}: {str(doc)[:200]}"
    return doc, ""


def container_check(ctx: Context, d: Deploy, summary: dict, sock: str = SOCKET) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    name = (summary.get("Names") or ["?"])[0].lstrip("/")
    status, info, err = api(f"/containers/{summary.get('Id')}/json", sock)
    st = (info or {}).get("State") or {} if isinstance(info, dict) else {}
    logs = f"docker logs --tail 50 {quote(name)}"
    health = (st.get("Health") or {}).get("Status")
    if not st.get("Running"):
        oom = " (OOM-killed)" if st.get("OOMKilled") else ""
        bad = FAIL if d.desired == "running" else PASS
        fix = [logs, ctx.install_cmd(d.root, "start", d.name)] if bad == FAIL else []
        return Result(
            g,
            f"container {name}",
            bad,
            f"{st.get('Status', 'unknown')}, exit code {st.get('ExitCode')}{oom}"
            + ("" if bad == FAIL else " (desired: stopped)"),
            fix,
            data={"state": st},
            **kw,
        )
    if health == "unhealthy":
        last = ((st.get("Health") or {}).get("Log") or [{}])[-1]
        return Result(
            g,
            f"container {name}",
            FAIL,
            f"running but unhealthy (failing streak {st['Health'].get('FailingStreak')})",
            [logs, ctx.install_cmd(d.root, "restart", d.name)],
            [str(last.get("Output", "")).strip()[:300]],
            data={"state": st},
            **kw,
        )
    if health == "starting":
        return Result(
            g,
            f"container {name}",
            WARN,
            "running, health check still starting",
            [f"docker inspect --format '{{{{json .State.Health}}}}' {quote(name)}"],
            data={"state": st},
            **kw,
        )
    restarts = (info or {}).get("RestartCount", 0) if isinstance(info, dict) else 0
    detail = f"running (pid {st.get('Pid')}), health {health or 'not configured'}"
    # The installer records the image a release first ran on, so a newer package never swaps
    # it silently; a container on another image means someone recreated it by hand.
    want = (((d.state or {}).get("releases") or {}).get(d.version or "") or {}).get("image") or {}
    have = (info or {}).get("Image") if isinstance(info, dict) else None
    if want.get("id") and have and have != want["id"]:
        return Result(
            g,
            f"container {name}",
            WARN,
            f"{detail}, but on image {have[:19]}, not the release's {str(want['id'])[:19]} ({want.get('tag')})",
            [ctx.install_cmd(d.root, "restart", d.name)],
            data={"state": st},
            **kw,
        )
    if restarts:
        return Result(
            g, f"container {name}", WARN, f"{detail}, restarted {restarts} time(s)", [logs], data={"state": st}, **kw
        )
    return Result(g, f"container {name}", PASS, detail, data={"state": st}, **kw)


def deploy_checks(ctx: Context, d: Deploy, sock: str = SOCKET) -> list[Result]:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    found, err = containers(d, sock)
    if found is None:
        return [
            Result(
                g,
                "docker-engine",
                FAIL,
                f"the Docker engine does not answer on {sock}: {err}",
                ["systemctl start docker", "docker info"],
                **kw,
            )
        ]
    if not found:
        if d.desired == "running":
            return [
                Result(
                    g,
                    "containers",
                    FAIL,
                    "no container of this deploy exists (want up)",
                    [ctx.install_cmd(d.root, "start", d.name)],
                    **kw,
                )
            ]
        return [Result(g, "containers", PASS, "no container (desired: stopped)", **kw)]
    return [container_check(ctx, d, c, sock) for c in found]


def runtime_kind(state: dict | None) -> str:
    """The deploy's runtime kind; an installer older than state schema 2 wrote it as ``runtime``
    (the installer migrates it when it next reads the file, this tool never writes)."""
    state = state or {}
    return str(state.get("runtime_kind") or state.get("runtime") or "process")


def checks(ctx: Context) -> Iterable[Result]:
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken") or runtime_kind(d.state) != "docker":
            continue
        ctx.set_deploy_fact(d, "docker", True)
        yield from deploy_checks(ctx, d)
