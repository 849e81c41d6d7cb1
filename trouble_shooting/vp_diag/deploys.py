"""Each deploy's journal and release: state.json, interrupted operations, current -> release, runtime."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from . import procfs
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "deploys"
ORDER = 30
RELEASE_FILES = (
    "config.yml",
    "release.json",
    "start/start-1.sh",
    "start/gunicorn_conf.py",
    "package/visionpack/__init__.py",
)


def journal_check(ctx: Context, d: Deploy) -> Result:
    g = deploy_group(d)
    if d.state_error:
        return Result(
            g,
            "journal",
            FAIL,
            f"{d.dir}/state.json: {d.state_error}",
            [
                f"python3 -m json.tool {quote(d.dir / 'state.json')}  # shows where it is damaged",
                ctx.install_cmd(d.root, "remove", d.name, "--purge") + "  # then install it again",
            ],
            deploy=d.name,
            root=str(d.root),
        )
    if not d.version:
        return Result(
            g,
            "journal",
            FAIL,
            "state.json records no installed release (an interrupted first install)",
            [ctx.install_cmd(d.root, "install", d.name)],
            deploy=d.name,
            root=str(d.root),
        )
    return Result(
        g,
        "journal",
        PASS,
        f"state.json: release {d.version}, desired {d.desired}, service {d.service}, {d.host}:{d.port}",
        deploy=d.name,
        root=str(d.root),
    )


def operation_check(ctx: Context, d: Deploy) -> Result:
    g = deploy_group(d)
    op = (d.state or {}).get("operation")
    if not op:
        return Result(g, "operation", PASS, "no operation left in progress", deploy=d.name, root=str(d.root))
    kind, step, pid = op.get("op"), op.get("step"), op.get("pid")
    what = f"'{kind}' stopped at step '{step}' (started {op.get('started_at')}, pid {pid})"
    p = procfs.proc(int(pid)) if isinstance(pid, int) else None
    if p is not None and p.alive and "install.py" in p.cmdline:
        return Result(
            g,
            "operation",
            WARN,
            f"{what} is running right now",
            [f"# wait for pid {pid} to finish, then rerun"],
            deploy=d.name,
            root=str(d.root),
            data={"operation": op},
        )
    # The next install.py command on the deploy takes its lock and repairs (installer/recovery.py):
    # an uncommitted install is undone, a remove is finished, start/stop records are cleared.
    if kind == "install" and op.get("release") and op.get("release") == d.version:
        # The commit had happened (journal.decide: "clear"); the next start/stop just drops the record.
        fix = [ctx.install_cmd(d.root, "start", d.name) + "  # the install had committed; this clears the record"]
    elif kind == "install":
        fix = [
            ctx.install_cmd(d.root, "stop", d.name) + "  # undoes the half-done install",
            ctx.install_cmd(d.root, "install", d.name),
        ]
    elif kind in ("upgrade", "rollback"):
        # recovery.py finishes a switch that had committed, or undoes one that had not.
        fix = [ctx.install_cmd(d.root, "start", d.name) + f"  # finishes or undoes the interrupted {kind}"]
    elif kind == "remove":
        fix = [ctx.install_cmd(d.root, "remove", d.name) + "  # finishes the removal"]
    else:
        again = kind if kind in ("start", "stop", "restart") else "status"
        fix = [ctx.install_cmd(d.root, again, d.name)]
    return Result(
        g,
        "operation",
        FAIL,
        f"an interrupted {what}; its process is gone",
        fix,
        deploy=d.name,
        root=str(d.root),
        data={"operation": op},
    )


def release_check(ctx: Context, d: Deploy) -> Result:
    g = deploy_group(d)
    rel = d.release
    assert rel is not None
    fix_link = [f"ln -sfn {quote('releases/' + str(d.version))} {quote(d.dir / 'current')}"]
    if not rel.is_dir():
        return Result(
            g,
            "release",
            FAIL,
            f"release {d.version} is recorded in state.json but {rel} is missing",
            [ctx.install_cmd(d.root, "remove", d.name), ctx.install_cmd(d.root, "install", d.name)],
            deploy=d.name,
            root=str(d.root),
        )
    cur = d.dir / "current"
    if not os.path.lexists(cur):
        return Result(
            g,
            "release",
            FAIL,
            f"{cur} is missing (should point to releases/{d.version})",
            fix_link,
            deploy=d.name,
            root=str(d.root),
        )
    if not cur.is_symlink():
        return Result(
            g,
            "release",
            FAIL,
            f"{cur} is not a symlink (should point to releases/{d.version})",
            [f"mv {quote(cur)} {quote(str(cur) + '.bad')}"] + fix_link,
            deploy=d.name,
            root=str(d.root),
        )
    target = os.readlink(cur)
    if not cur.exists():
        return Result(
            g,
            "release",
            FAIL,
            f"current -> {target} points to nothing (release {d.version} is installed)",
            fix_link,
            deploy=d.name,
            root=str(d.root),
        )
    if os.path.realpath(cur) != os.path.realpath(rel):
        return Result(
            g,
            "release",
            FAIL,
            f"current -> {target}, but state.json says release {d.version}",
            fix_link,
            deploy=d.name,
            root=str(d.root),
        )
    missing = [f for f in RELEASE_FILES if not (rel / f).exists()]
    if missing:
        return Result(
            g,
            "release",
            FAIL,
            f"release {d.version} lacks {', '.join(missing)}",
            [ctx.install_cmd(d.root, "remove", d.name), ctx.install_cmd(d.root, "install", d.name)],
            deploy=d.name,
            root=str(d.root),
        )
    return Result(g, "release", PASS, f"current -> {target} (complete)", deploy=d.name, root=str(d.root))


def runtime_check(ctx: Context, d: Deploy) -> Result:
    g = deploy_group(d)
    rt = d.runtime
    if rt is None:
        return Result(
            g,
            "runtime",
            FAIL,
            f"{d.release}/release.json names no runtime venv",
            [ctx.install_cmd(d.root, "remove", d.name), ctx.install_cmd(d.root, "install", d.name)],
            deploy=d.name,
            root=str(d.root),
        )
    # bin/python itself is exercised by the deps checks ("runtime broken"); here only the layout.
    missing = [n for n in ("bin/gunicorn",) if not (rt / n).exists()] if rt.is_dir() else [str(rt)]
    if missing:
        return Result(
            g,
            "runtime",
            FAIL,
            f"runtime {rt} lacks {', '.join(missing)}",
            rebuild_runtime(ctx, d, rt),
            deploy=d.name,
            root=str(d.root),
        )
    return Result(g, "runtime", PASS, f"runtime venv {rt}", deploy=d.name, root=str(d.root))


def rebuild_runtime(ctx: Context, d: Deploy, rt: Path) -> list:
    # The installer rebuilds a runtime whose bin/python or bin/gunicorn is missing when a release
    # is built (venvs.is_complete), so moving the damaged venv aside and reinstalling repairs it;
    # remove keeps data/ and logs/.
    again = ["install", d.name, "--host", d.host, "--port", str(d.port)]
    workers = (d.state or {}).get("workers")
    if isinstance(workers, int):
        again += ["--workers", str(workers)]
    return [
        f"mv {quote(rt)} {quote(str(rt) + '.broken')}",
        ctx.install_cmd(d.root, "remove", d.name),
        ctx.install_cmd(d.root, *again),
    ]


def checks(ctx: Context) -> Iterable[Result]:
    for d in ctx.deploys:
        j = journal_check(ctx, d)
        yield j
        if d.state is None:
            ctx.set_deploy_fact(d, "broken", "journal")
            continue
        yield operation_check(ctx, d)
        if not d.version:
            ctx.set_deploy_fact(d, "broken", "journal")
            continue
        r = release_check(ctx, d)
        yield r
        if r.status == FAIL and not (d.release and d.release.is_dir()):
            ctx.set_deploy_fact(d, "broken", "release")
            continue
        yield runtime_check(ctx, d)
