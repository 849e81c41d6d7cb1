"""A face deploy's shared gallery database (gallery.store postgresql): reachable, schema, sync lag.

The database is asked from the deploy's runtime venv (psycopg lives there), through the
package's own ``store_factory.check_store``, which never migrates; the sync lag is what the
running service says in ``/ready`` (``gallery.listening``, ``gallery.synced_s_ago``), asked on
loopback like the HTTP checks. A deploy whose store has nothing to reach (SQLite) gets no line.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from typing import Any

from . import venv_exec
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "gallery"
ORDER = 92
LAG_WARN_S = 5.0  # the generation check runs every 0.5 s: seconds behind means it is stuck
TIMEOUT = 60.0

CODE = r"""
from visionpack import config
from visionpack.gallery.store_factory import check_store
try:
    cfg = config.load(sys.argv[2], env={})
except Exception as exc:  # the release check's business; this check cannot run without it
    print(json.dumps({"config_error": f"{type(exc).__name__}: {exc}"[:300]}))
    sys.exit(0)
print(json.dumps(check_store(cfg.gallery)))
"""


def ready_detail(d: Deploy, timeout: float = 5.0) -> dict[str, Any] | None:
    host = "127.0.0.1" if d.host in ("0.0.0.0", "::", "") else d.host
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{host}:{d.port}/ready", timeout=timeout) as resp:
            doc = json.loads(resp.read())
    except Exception:  # noqa: BLE001  (down or refusing: the HTTP checks report that)
        return None
    return doc if isinstance(doc, dict) else None


def database_check(ctx: Context, d: Deploy, info: dict[str, Any]) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root), data={"gallery": info})
    where = info.get("database", "the gallery database")
    if not info.get("reachable"):
        return Result(
            g,
            "gallery-database",
            FAIL,
            f"{where} is not reachable: {info.get('error', 'no answer')}",
            [
                f"pg_isready -d {quote(str(where).split('/')[-1])}  # on the database server; the DSN is in "
                f"{quote(d.release / 'config.yml' if d.release else 'config.yml')}",
                "ls -l <gallery.password_file>  # readable by the service user? (docs/scale-out.md)",
            ],
            **kw,
        )
    schema, compat, reads = info.get("schema", 0), info.get("compat", 0), info.get("reads", 0)
    if compat > reads:
        return Result(
            g,
            "gallery-database",
            FAIL,
            f"{where}: schema {schema} needs a release reading schema {compat}; this release reads {reads}",
            [ctx.install_cmd(d.root, "upgrade", d.name, "--package", "<newer package>")],
            **kw,
        )
    if schema < reads:
        return Result(
            g,
            "gallery-database",
            WARN,
            f"{where}: schema {schema}, this release migrates it to {reads} when it next starts",
            [ctx.install_cmd(d.root, "restart", d.name)],
            **kw,
        )
    return Result(
        g, "gallery-database", PASS, f"{where} reachable, schema {schema}, {info.get('faces', 0)} face(s)", **kw
    )


def sync_check(d: Deploy, detail: dict[str, Any]) -> Result | None:
    sync = detail.get("gallery")
    if not isinstance(sync, dict) or "listening" not in sync:
        return None  # stopped, or a /ready without the detail (another scope policy)
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root), data={"sync": sync})
    lag = sync.get("synced_s_ago")
    if not sync.get("listening"):
        return Result(
            g, "gallery-sync", FAIL,
            f"the service lost the gallery database ({sync.get('error')}): searches use the gallery as of "
            f"{lag} s ago, gallery writes fail",
            ["# see the gallery-database line above; the service reconnects by itself once it is reachable"], **kw,
        )  # fmt: skip
    if lag is None or lag > LAG_WARN_S:
        return Result(g, "gallery-sync", WARN, f"the last generation check was {lag} s ago (expected < 1 s)", **kw)
    return Result(g, "gallery-sync", PASS, f"listening for gallery changes, last generation check {lag} s ago", **kw)


def checks(ctx: Context) -> Iterable[Result]:
    for d in ctx.deploys:
        if d.service != "face" or ctx.deploy_fact(d, "broken") or d.runtime is None or d.release is None:
            continue
        info, err = venv_exec.run(
            d.runtime / "bin" / "python", d.release / "package", CODE, [str(d.release / "config.yml")], TIMEOUT
        )
        if not isinstance(info, dict):
            yield Result(deploy_group(d), "gallery-database", FAIL, f"cannot ask the gallery store: {err}",
                         deploy=d.name, root=str(d.root))  # fmt: skip
            continue
        if info.get("config_error"):  # a config the service would refuse: not a database failure
            yield Result(deploy_group(d), "gallery-database", WARN,
                         f"not checked: the release's config.yml does not load ({info['config_error']})",
                         deploy=d.name, root=str(d.root))  # fmt: skip
            continue
        if "reachable" not in info:
            continue  # nothing to reach (SQLite in the data directory)
        yield database_check(ctx, d, info)
        detail = ready_detail(d)
        found = sync_check(d, detail) if detail else None
        if found is not None:
            yield found
