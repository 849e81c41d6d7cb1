"""install|in DEPLOY: check the environment, build the venv + release, switch, start."""

from __future__ import annotations

from typing import Any

from ...errors import AlreadyInstalled, GpuUnavailable
from ...fsutil import atomic_symlink
from .. import envcheck, filemodes, journal, recovery, release, releases, serviceuser, tune, venvs
from ..context import Context
from ..installed import Installed
from ..runtimes.kinds import runtime_for
from .start import start_installed


def install(
    ctx: Context,
    deploy: str,
    *,
    host: str,
    port: int | None,
    workers: int,
    force: bool,
    stopped: bool,
    timeout: float,
    keep: int | None = None,
    runtime_kind: str = "process",
    gallery: dict[str, str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    source = ctx.source
    release.yaml_ready(source)
    entry = source.entry(deploy)
    version = source.version()
    paths = ctx.root.deploy(deploy)
    port = port or entry.port
    existing = journal.load(paths)
    if existing and existing.get("release"):  # an interrupted first install has none
        raise AlreadyInstalled(f"{deploy!r} release {existing['release']} is already installed in {paths.dir}")
    # Validate the options before anything is written (ConfigInvalid names the bad one).
    device = release.service_config(
        ctx.root,
        paths,
        entry,
        paths.release(version),
        host=host,
        port=port,
        workers=workers,
        gallery=gallery,
        device=device,
    ).device  # normalised: a bare "gpu" is gpu:0

    # docker: no engine or no image is refused before anything is written (nothing half installed).
    runtime = runtime_for(None, kind=runtime_kind)
    if device != "cpu" and not runtime.gpu:
        raise GpuUnavailable(f"device {device}: the {runtime.kind} runtime runs on the CPU only (docs/gpu.md)")
    found = runtime.preflight(ctx)
    if found:
        ctx.say(found)
    report = envcheck.run(source, ctx.root.path, deploy, host, port, sorted(set(entry.models.values())), device)
    for line in report.lines():
        ctx.say(line)
    error = envcheck.error_for(report)
    if error is not None:
        if not force:
            ctx.say("Environment checking failed! Please fix them before installation.")
            raise error
        ctx.warn(f"{error.detail} -- going on because of --force")

    with journal.deploy_lock(paths):
        state = recovery.recover(paths, journal.load(paths), ctx.say)
        if state and state.get("release"):
            raise AlreadyInstalled(f"{deploy!r} release {state['release']} is already installed in {paths.dir}")
        state = journal.new_state(deploy, entry.service)
        state["runtime_kind"] = runtime.kind  # runtimes.kinds.runtime_for reads it for every later command

        try:
            journal.begin(paths, state, "install", "runtime", release=version)
            serviceuser.ensure(ctx.say)  # as root, once: the venv is built for it to run
            venv = venvs.ensure(ctx.root, source, say=ctx.say)
            copied = release.copy_licenses(ctx.root, source)
            if copied:
                ctx.say(f"licenses: {', '.join(copied)} -> {ctx.root.licenses}")

            journal.begin(paths, state, "install", "release")
            rel_dir = paths.release(version)
            cfg = release.service_config(
                ctx.root, paths, entry, rel_dir, host=host, port=port, workers=workers, gallery=gallery, device=device
            )
            for d in (paths.data, paths.logs, paths.run):
                d.mkdir(parents=True, exist_ok=True)
            release.build(ctx.root, paths, source, entry, version, cfg, venv)
            tune.tune_release(venv, rel_dir, cfg, ctx.say)  # backend: auto, settled in the release
            ctx.say(f"release {version} -> {rel_dir}")

            journal.begin(paths, state, "install", "switch")
            atomic_symlink(f"releases/{version}", paths.current)

            # The commit: release recorded and the operation cleared in one atomic write.
            state.update(
                release=version,
                desired="stopped" if stopped else "running",
                host=host,
                port=port,
                workers=workers,
                operation=None,
            )
            state["releases"][version] = {"installed_at": journal.now(), "venv": str(venv)}
            if keep:
                state["keep"] = keep
            if gallery:
                state["gallery"] = gallery  # upgrade builds every later release's config with it
            if device != "cpu":
                state["device"] = device  # likewise
            releases.record_activation(state, version, "install")
            journal.save(paths, state)
            filemodes.secure(ctx.root, ctx.say)
        except BaseException:
            # A failure we see (pip, a bad bundle, Ctrl-C) is undone now; only SIGKILL leaves the
            # journal record for the next run to undo.
            ctx.say(f"install of {deploy} failed; undoing it")
            state["release"] = None  # the commit is the try's last statement: it did not happen
            recovery.undo_install(paths, state, version, ctx.say)
            raise
        ctx.say(f"installed {deploy} {version} (service {entry.service}) in {paths.dir}")

        result: dict[str, Any] = {
            "deploy": deploy,
            "release": version,
            "path": str(paths.dir),
            "runtime": str(venv),
            "runtime_kind": runtime_kind,
            "host": host,
            "port": port,
            "started": False,
        }
        if not stopped:
            pid = start_installed(ctx, Installed(paths, state), timeout=timeout)
            result.update(started=True, pid=pid)
        else:
            ctx.say(f"not started (--stopped); run 'install.py start {deploy}'")
        return result
