"""start/start-N.sh, the docker flavour: the one-line way to start a deploy's container by hand
(docs/docker.md), rendered from the package's start-docker.sh.in with the same ``docker run``
arguments runtimes/docker_containers.py gives the Docker SDK."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from ...errors import PackageCorrupt
from ...handover import STANDBY_REQUEST
from ..layout import DeployPaths
from ..procs import probe_host
from .docker_containers import GID, LABEL, START_TEMPLATE, UID, ContainerSpec, ImageRef


def render_start_script(
    template: str,
    spec: ContainerSpec,
    ref: ImageRef,
    *,
    instance: int,
    deploy: str,
    version: str,
    dirs: Sequence[Path],
    ready_url: str,
    standby_request: Path,
) -> str:
    from ..release import render

    run_args = "\n    ".join(" ".join(shlex.quote(a) for a in group) for group in spec.run_arg_groups())
    return render(
        template,
        {
            "N": str(instance),
            "DEPLOY": deploy,
            "VERSION": version,
            "NAME": spec.name,
            "IMAGE": spec.image,
            "IMAGE_TAR": str(ref.tar),
            "UID": str(UID),
            "GID": str(GID),
            "READY_URL": ready_url,
            "DIRS": " ".join(shlex.quote(str(d)) for d in dirs),
            "DOCKER_RUN_ARGS": run_args,
            "DEPLOY_DIR": spec.working_dir,
            "STANDBY_REQUEST": str(standby_request),
        },
    )


def write_start_script(
    template_dir: Path,
    paths: DeployPaths,
    spec: ContainerSpec,
    ref: ImageRef,
    *,
    instance: int,
    version: str,
    host: str,
    port: int,
) -> Path:
    """Write ``<release>/start/start-<instance>.sh`` (the docker flavour) and return its path."""
    from ...fsutil import atomic_write

    try:
        template = (Path(template_dir) / START_TEMPLATE).read_text(encoding="utf-8")
    except OSError as exc:
        raise PackageCorrupt(f"cannot read the docker start template: {exc}") from None
    h = probe_host(host)
    url = f"http://[{h}]:{port}/ready" if ":" in h else f"http://{h}:{port}/ready"
    release = Path(spec.labels[f"{LABEL}.release"])
    script = render_start_script(
        template,
        spec,
        ref,
        instance=instance,
        deploy=paths.name,
        version=version,
        dirs=(paths.data, paths.logs, paths.run),
        ready_url=url,
        standby_request=paths.release_run(version) / STANDBY_REQUEST,
    )
    out = release / "start" / f"start-{instance}.sh"
    atomic_write(out, script, mode=0o755)
    return out
