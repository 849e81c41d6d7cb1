"""install.py's command line: argparse, dispatch, and turning errors into exit codes.

Example::

    python3 package/Install/install.py --root /opt/visionpack install demo-classify --port 8701
    python3 package/Install/install.py status --json

Every failure is a VisionpackError: ``error: <detail>`` and ``hint: <hint>`` go to stderr and the
process exits with the error's own code (README error table). ``--json`` prints one JSON
document on stdout, also for errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError, VisionpackError
from .context import Context
from .layout import DEFAULT_ROOT, Root, resolve_root
from .runtimes.kinds import DEFAULT as DEFAULT_KIND, KINDS
from .settings import ROOT_ENV
from .source import Source

DEFAULT_START_TIMEOUT = 120.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would print usage and exit 2 itself; route it through our error path instead.
        raise UsageError(f"{self.prog}: {message}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    # --root is accepted before or after the command; SUPPRESS keeps the sub-parser's unset
    # default from overwriting a value given before the command.
    common = _Parser(add_help=False)
    common.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help=f"install root (default: ${ROOT_ENV}, else {DEFAULT_ROOT})",
    )
    parser = _Parser(
        prog="install.py", description="Install and run visionpack inference services offline.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, aliases: Sequence[str], help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, aliases=list(aliases), help=help_, parents=[common])

    p = add("install", ["in"], "install a deploy from this package and start it")
    p.add_argument("deploy", metavar="DEPLOY")
    p.add_argument(
        "--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0; 127.0.0.1 = this machine only)"
    )
    p.add_argument("--port", type=_positive, default=None, help="port (default: the catalog's port, see 'search')")
    p.add_argument("--workers", type=_positive, default=1, help="gunicorn worker processes, one model each (default 1)")
    p.add_argument("--force", action="store_true", help="install even if the environment check fails")
    p.add_argument("--stopped", action="store_true", help="install without starting")
    p.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_START_TIMEOUT, help="seconds to wait for /ready (default 120)"
    )
    p.add_argument("--keep", type=_keep, default=None, help="releases to keep for rollback (default 5)")
    p.add_argument(
        "--runtime",
        choices=tuple(KINDS),
        default=DEFAULT_KIND,
        help="run the service as gunicorn processes (default) or as Docker containers (docs/docker.md)",
    )
    p.add_argument(
        "--systemd",
        dest="runtime",
        action="store_const",
        const="systemd",
        help="run it from systemd units visionpack-<deploy>.{socket,service} (= --runtime systemd; needs systemd)",
    )
    p.add_argument(
        "--gallery-store",
        default=None,
        metavar="KIND",
        help="face deploys: where the gallery lives, sqlite (default, in data/) or postgresql (docs/scale-out.md)",
    )
    p.add_argument(
        "--gallery-dsn", default=None, metavar="DSN", help="postgresql: 'host=H dbname=D user=U' (no password)"
    )
    p.add_argument(
        "--gallery-password-file", default=None, metavar="FILE", help="postgresql: the file holding the password"
    )
    p.add_argument(
        "--device",
        default="cpu",
        metavar="cpu|gpu:N",
        help="where the models run: cpu (default) or GPU N of 'nvidia-smi -L' (the GPU package; docs/gpu.md)",
    )
    p.set_defaults(func=_cmd_install)

    p = add("upgrade", ["up"], "install a newer package's release beside the running one and switch to it")
    p.add_argument("deploy", metavar="DEPLOY")
    p.add_argument(
        "--package",
        metavar="DIR",
        default=None,
        help="top of the newer unpacked package (default: the package this install.py is in)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_START_TIMEOUT,
        help="seconds the new release gets to become ready (default 120); else it is rolled back",
    )
    p.add_argument("--keep", type=_keep, default=None, help="releases to keep for rollback (default: as before, 5)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_upgrade)

    p = add("rollback", ["rb"], "switch back to the previous (or --to a named) kept release")
    p.add_argument("deploy", metavar="DEPLOY")
    p.add_argument("--to", metavar="VERSION", default=None, help="a kept release ('list' shows them)")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_START_TIMEOUT,
        help="seconds the release gets to become ready (default 120)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_rollback)

    p = add("inall", [], "install every deploy this package offers, each on its catalog port")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--workers", type=_positive, default=1, help="gunicorn workers per deploy (default 1)")
    p.add_argument("--force", action="store_true", help="install even if the environment check fails")
    p.add_argument("--stopped", action="store_true", help="install without starting")
    p.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_START_TIMEOUT, help="seconds to wait for /ready (default 120)"
    )
    p.add_argument(
        "--runtime",
        choices=tuple(KINDS),
        default=DEFAULT_KIND,
        help="gunicorn processes (default) or Docker containers, for every deploy",
    )
    p.add_argument(
        "--systemd",
        dest="runtime",
        action="store_const",
        const="systemd",
        help="every deploy from its own systemd units (= --runtime systemd; needs systemd)",
    )
    p.set_defaults(func=_cmd_inall)

    p = add("rmall", [], "stop and remove every installed deploy (data/ is kept unless --purge)")
    p.add_argument("--purge", action="store_true", help="also delete data/ and logs/")
    p.set_defaults(func=_cmd_rmall)

    p = add("remove", ["rm"], "stop and remove a deploy (data/ is kept unless --purge)")
    p.add_argument("deploy", metavar="DEPLOY")
    p.add_argument("--purge", action="store_true", help="also delete data/ and logs/")
    p.set_defaults(func=_cmd_remove)

    p = add("list", ["li"], "list installed deploys")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_list)

    p = add("search", ["se"], "list the deploys this package offers")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_search)

    p = add("status", [], "state, pids, address, release and readiness of installed deploys")
    p.add_argument("deploy", nargs="?", metavar="DEPLOY")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_status)

    p = add("tune", [], "measure the inference backends for a deploy's release again (backend: auto)")
    p.add_argument("deploy", metavar="DEPLOY")
    p.add_argument("--write", action="store_true", help="store the new choice in the release (deploy stopped only)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_tune)

    p = add("apikey", [], "API keys and per-scope access policies of a deploy (README 'API keys')")
    from .commands import apikey as apikey_cmd  # its parser lives beside the command

    apikey_cmd.configure(p, _Parser, common, _cmd_apikey)

    p = add("fingerprint", ["fg"], "write this machine's license request for the vendor, or --diff a license")
    p.add_argument(
        "--out", metavar="FILE", default=None, help="request file to write (default ./fingerprint-request.json)"
    )
    p.add_argument(
        "--diff", metavar="LICENSE", default=None, help="show per hardware component whether LICENSE matches"
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_fingerprint)

    p = add("licenseupdate", ["lu"], "verify a new license completely, then install it atomically")
    p.add_argument("file", nargs="?", metavar="FILE", help="license file (default: the package's licenses/license.lic)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=_cmd_lu)

    for name, help_ in (
        ("start", "start an installed deploy"),
        ("stop", "stop a running deploy"),
        ("restart", "stop, then start"),
    ):
        p = add(name, [], help_)
        p.add_argument("deploy", metavar="DEPLOY")
        if name != "stop":
            p.add_argument(
                "--timeout",
                type=_seconds,
                default=DEFAULT_START_TIMEOUT,
                help="seconds to wait for /ready (default 120)",
            )
        p.set_defaults(func={"start": _cmd_start, "stop": _cmd_stop, "restart": _cmd_restart}[name])
    return parser


def _keep(text: str) -> int:
    value = _positive(text)
    if value < 2:
        raise argparse.ArgumentTypeError("must be at least 2: the current release and the previous one")
    return value


def _cmd_install(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.install import install

    return install(
        ctx,
        a.deploy,
        host=a.host,
        port=a.port,
        workers=a.workers,
        force=a.force,
        stopped=a.stopped,
        timeout=a.timeout,
        keep=a.keep,
        runtime_kind=a.runtime,
        gallery=_gallery_options(a),
        device=a.device,
    )


def _gallery_options(a: argparse.Namespace) -> dict[str, str] | None:
    """install's --gallery-* options as config.yml's ``gallery`` section (config.py validates it)."""
    given = {"store": a.gallery_store, "dsn": a.gallery_dsn, "password_file": a.gallery_password_file}
    return {k: v for k, v in given.items() if v is not None} or None


def _cmd_upgrade(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.upgrade import upgrade

    return _quiet_json(a, ctx, lambda c: upgrade(c, a.deploy, package=a.package, timeout=a.timeout, keep=a.keep))


def _cmd_rollback(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.rollback import rollback

    return _quiet_json(a, ctx, lambda c: rollback(c, a.deploy, to=a.to, timeout=a.timeout))


def _cmd_inall(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.bulk import inall

    return _bulk_exit(
        inall(
            ctx,
            host=a.host,
            workers=a.workers,
            force=a.force,
            stopped=a.stopped,
            timeout=a.timeout,
            runtime_kind=a.runtime,
        )
    )


def _cmd_rmall(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.bulk import rmall

    return _bulk_exit(rmall(ctx, purge=a.purge))


def _bulk_exit(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["failed"]:
        # Every failure was reported per deploy; exit with the worst one's code and hint.
        err = doc["worst"]
        err.detail = f"{doc['failed']} deploy(s) failed (see above); {err.detail}"
        raise err
    return doc


def _cmd_remove(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.remove import remove

    return remove(ctx, a.deploy, purge=a.purge)


def _cmd_list(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands import list as cmd

    return _show(a, cmd.list_installed(ctx), cmd.render)


def _cmd_search(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands import search as cmd

    return _show(a, cmd.search(ctx), cmd.render)


def _cmd_status(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands import status as cmd

    return _show(a, cmd.status(ctx, a.deploy), cmd.render)


def _cmd_tune(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands import tune as cmd

    if a.json:  # the measuring lines go to stderr, the document alone to stdout
        return _quiet_json(a, ctx, lambda c: cmd.run(c, a.deploy, write=a.write))
    return _show(a, cmd.run(ctx, a.deploy, write=a.write), cmd.render)


def _cmd_apikey(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands import apikey as cmd

    return _show(a, cmd.run(ctx, a), cmd.render)


def _cmd_fingerprint(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands import license as cmd

    return _quiet_json(a, ctx, lambda c: cmd.fingerprint(c, a.out, a.diff))


def _cmd_lu(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands import license as cmd

    return _quiet_json(a, ctx, lambda c: cmd.lu(c, a.file))


def _quiet_json(a: argparse.Namespace, ctx: Context, run: Callable[[Context], dict[str, Any]]) -> dict[str, Any]:
    if not a.json:
        return run(ctx)
    # With --json the only thing on stdout is the document; progress goes to stderr.
    doc = run(dataclasses.replace(ctx, say=lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(doc, indent=2, sort_keys=True))
    return doc


def _cmd_start(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.start import start

    return start(ctx, a.deploy, timeout=a.timeout)


def _cmd_stop(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.stop import stop

    return stop(ctx, a.deploy)


def _cmd_restart(ctx: Context, a: argparse.Namespace) -> dict[str, Any]:
    from .commands.restart import restart

    return restart(ctx, a.deploy, timeout=a.timeout)


def _show(a: argparse.Namespace, doc: dict[str, Any], render: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
    if a.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for line in render(doc):
            print(line)
    return doc


def _package_dir() -> Path:
    # installer/cli.py -> visionpack/ -> package/
    return Path(__file__).resolve().parents[2]


def report_error(exc: VisionpackError, as_json: bool) -> int:
    print(f"error: {exc.detail}", file=sys.stderr)
    print(f"hint: {exc.hint}", file=sys.stderr)
    if as_json:
        print(
            json.dumps(
                {
                    "error": {
                        "name": type(exc).__name__,
                        "slug": exc.slug,
                        "detail": exc.detail,
                        "hint": exc.hint,
                        "exit_code": exc.exit_code,
                    }
                },
                indent=2,
                sort_keys=True,
            )
        )
    return exc.exit_code


def main(
    argv: Sequence[str] | None = None, *, package_dir: Path | None = None, env: dict[str, str] | None = None
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    if os.geteuid() == 0:
        # Root's code, venv and config must be readable by the service user whatever umask the
        # operator's shell has (077 is common on hardened servers); what must stay private is
        # given its mode explicitly (installer/filemodes.py).
        os.umask(0o022)
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            raise UsageError("no command given; try 'install.py search' or 'install.py --help'")
        root = resolve_root(getattr(args, "root", None), env)
        ctx = Context(Root(root), Source.from_package_dir(package_dir or _package_dir()))
        args.func(ctx, args)
        return 0
    except VisionpackError as exc:
        return report_error(exc, as_json)
    except KeyboardInterrupt:
        # The journal already records the step; the next run repairs it.
        print("error: interrupted; run the same command again to finish or undo it", file=sys.stderr)
        return 130
