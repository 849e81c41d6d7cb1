"""The containers of the docker runtime: one Docker container per service instance of a deploy.

The Docker SDK calls behind runtimes/docker.py: ``start`` (recreate and wait for /ready),
``stop``, ``status``, ``remove``, and start-N.sh's docker flavour. The image comes from the
package, never a registry: ``original/images/visionpack-runtime-<lock sha256[:16]>.tar``
(tools/image/build_image.sh; docker_image.py), loaded with the Docker SDK for Python unless the
engine already has that image id.

A container (docs/docker.md)
  * runs ``visionpack-serve <release>``: the release's own gunicorn and code, mounted read-only
    at the same path as on the host, so config.yml's absolute paths hold inside;
  * uses the host's network (never a Docker bridge), restart policy ``unless-stopped``, a health
    check on GET /ready, labels ``visionpack.deploy|version|instance|root|release``;
  * mounts ``<ROOT>/licenses`` read-only; ``<deploy>/data``, ``logs``, ``run`` read-write;
  * runs as uid:gid 10001:10001 (the image's ``visionpack`` user; the three writable directories
    are chowned to it), all capabilities dropped, no-new-privileges;
  * sees the host's identity: every source licensing/fingerprint.py reads is mounted read-only
    from the host, and /var/lib/visionpack read-write, so the service master takes its licence
    slot among the host's and the clock mark is the host's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ...access import probe
from ...access.scopes import OPS
from ...errors import StartFailed, StopFailed
from .. import filemodes, serviceuser
from ..layout import DeployPaths
from ..procs import get_ready, probe_host
from ..venvs import tail

# The image half, re-exported: callers and tests use docker_containers as the one entry point.
from .docker_image import (
    IMAGE_NAME as IMAGE_NAME,
    ImageRef as ImageRef,
    connect as connect,
    image_id_or_tag as image_id_or_tag,
    image_ref as image_ref,
    load_image as load_image,
    local_image_id as local_image_id,
    sdk as sdk,
)

UID = GID = serviceuser.UID  # the image's "visionpack" user (tools/image/image.py)
SERVE = "/usr/local/bin/visionpack-serve"
HEALTHCHECK = "/usr/local/bin/visionpack-healthcheck"
LABEL = "visionpack"
SHARED_STATE = "/var/lib/visionpack"  # licensing: instances/ (slots) and state/ (clock mark)
# What licensing/fingerprint.py reads (its module constants), mounted read-only at the same path.
# /proc/cpuinfo needs no mount: a container's /proc is the host kernel's. The root disk cannot be
# seen: a container's "/" is an overlay with no block device, so disk_serial is absent inside.
IDENTITY_SOURCES = (
    "/etc/machine-id",
    "/var/lib/dbus/machine-id",
    "/sys/class/dmi/id",
    "/sys/class/net",
    "/sys/block",
    "/sys/dev/block",
    "/dev/disk/by-id",
)
HEALTH = {"interval": 10, "timeout": 5, "retries": 3, "start_period": 180}  # seconds
LOG_OPTS = {"max-size": "10m", "max-file": "3"}  # docker's own log of the container (gunicorn.out)
START_TEMPLATE = "start-docker.sh.in"
_NS = 1_000_000_000


# --- one container ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    """Everything ``docker run`` needs; rendered both for the SDK and for start-N.sh."""

    name: str
    image: str
    command: tuple[str, ...]
    labels: Mapping[str, str]
    mounts: tuple[Mount, ...]
    health_cmd: str
    working_dir: str
    user: str = f"{UID}:{GID}"
    restart: str = "unless-stopped"
    health: Mapping[str, int] = field(default_factory=lambda: dict(HEALTH))
    environment: Mapping[str, str] = field(default_factory=dict)

    def sdk_kwargs(self) -> dict[str, Any]:
        from docker.types import LogConfig, Mount as SdkMount

        return {
            "image": self.image,
            "command": list(self.command),
            "name": self.name,
            "labels": dict(self.labels),
            "mounts": [SdkMount(m.target, m.source, type="bind", read_only=m.read_only) for m in self.mounts],
            "network_mode": "host",
            "restart_policy": {"Name": self.restart},
            "user": self.user,
            "working_dir": self.working_dir,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "healthcheck": {
                "test": ["CMD-SHELL", self.health_cmd],
                "interval": self.health["interval"] * _NS,
                "timeout": self.health["timeout"] * _NS,
                "retries": self.health["retries"],
                "start_period": self.health["start_period"] * _NS,
            },
            "log_config": LogConfig(type="json-file", config=dict(LOG_OPTS)),
            "environment": dict(self.environment),
        }

    def run_arg_groups(self) -> list[list[str]]:
        """``docker run`` arguments, one option with its value per group, giving the same container."""
        g = [
            ["--detach"],
            ["--name", self.name],
            ["--network", "host"],
            ["--restart", self.restart],
            ["--user", self.user],
            ["--workdir", self.working_dir],
            ["--cap-drop", "ALL"],
            ["--security-opt", "no-new-privileges"],
            ["--log-driver", "json-file"],
        ]
        g += [["--log-opt", f"{k}={v}"] for k, v in sorted(LOG_OPTS.items())]
        g += [["--label", f"{k}={v}"] for k, v in sorted(self.labels.items())]
        g += [["--env", f"{k}={v}"] for k, v in sorted(self.environment.items())]
        for m in self.mounts:
            if "," in m.source + m.target or '"' in m.source + m.target:
                raise StartFailed(f"cannot express the mount {m.source} for docker run --mount (comma or quote)")
            g.append(
                ["--mount", f"type=bind,source={m.source},target={m.target}" + (",readonly" if m.read_only else "")]
            )
        g += [
            ["--health-cmd", self.health_cmd],
            ["--health-interval", f"{self.health['interval']}s"],
            ["--health-timeout", f"{self.health['timeout']}s"],
            ["--health-retries", str(self.health["retries"])],
            ["--health-start-period", f"{self.health['start_period']}s"],
        ]
        return g + [[self.image, *self.command]]

    def run_args(self) -> list[str]:
        return [a for group in self.run_arg_groups() for a in group]


def service_ids() -> tuple[int, int]:
    """uid:gid a container runs as: the host's service user, as for process deploys.

    That is 10001:10001, the image's own user, wherever those numbers were free when root's
    installer created the user (serviceuser.ensure); where they were not, the container runs
    as the host's ``visionpack`` all the same, so the license (group-readable) and the slot
    files (group-writable) stay reachable. Without root: the image's user.
    """
    return serviceuser.ensure(say=lambda _msg: None) or (UID, GID)


def container_name(deploy: str, instance: int = 1) -> str:
    return f"{LABEL}-{deploy}-{instance}"


def identity_mounts() -> list[Mount]:
    """Read-only mounts of the host's identity sources that exist on this host."""
    return [Mount(p, p, True) for p in IDENTITY_SOURCES if os.path.exists(p)]


def spec_for(
    paths: DeployPaths, release: Path, version: str, image: str, *, host: str, port: int, instance: int = 1
) -> ContainerSpec:
    release = Path(os.path.realpath(release))
    h = probe_host(host)
    url = f"http://[{h}]:{port}/ready" if ":" in h else f"http://{h}:{port}/ready"
    mounts = [Mount(str(release), str(release), True), Mount(str(paths.root.licenses), str(paths.root.licenses), True)]
    mounts += [Mount(str(d), str(d), False) for d in (paths.data, paths.logs, paths.run)]
    mounts += [Mount(SHARED_STATE, SHARED_STATE, False)] + identity_mounts()
    # config.yml is the whole truth for instance 1 (as for processes). With host networking every
    # further instance of the same release needs a port of its own: the one override it gets.
    env = {"VISIONPACK_PORT": str(port)} if instance > 1 else {}
    labels = {
        f"{LABEL}.deploy": paths.name,
        f"{LABEL}.version": version,
        f"{LABEL}.instance": str(instance),
        f"{LABEL}.root": str(paths.root.path),
        f"{LABEL}.release": str(release),
    }
    uid, gid = service_ids()
    return ContainerSpec(
        name=container_name(paths.name, instance),
        image=image,
        command=(SERVE, str(release)),
        labels=labels,
        mounts=tuple(mounts),
        health_cmd=f"{HEALTHCHECK} {url}",
        working_dir=str(paths.dir),
        environment=env,
        user=f"{uid}:{gid}",
    )


def prepare_host(paths: DeployPaths) -> None:
    """Directories the container writes, owned by its user; the shared licensing directories."""
    if os.geteuid() == 0:
        # The same owners and modes as for process deploys (filemodes.py), so a deploy's data
        # means the same whichever runtime wrote it.
        ids = service_ids()
        filemodes.service_dirs(paths, ids)
        filemodes.prepare_shared_state(ids)
        return
    for d in (paths.data, paths.logs, paths.run):
        d.mkdir(parents=True, exist_ok=True)
        if os.stat(d).st_uid != UID:
            raise StartFailed(f"{d} must be owned by uid {UID} (the container's user); run install.py as root")
    for sub in ("instances", "state"):
        if not (Path(SHARED_STATE) / sub).is_dir():
            raise StartFailed(f"{Path(SHARED_STATE) / sub} is missing; run install.py as root once to create it")


def containers(client: Any, paths: DeployPaths) -> list[Any]:
    """This deploy's containers (all states), by labels deploy and root, in instance order."""
    found = client.containers.list(
        all=True, filters={"label": [f"{LABEL}.deploy={paths.name}", f"{LABEL}.root={paths.root.path}"]}
    )
    return sorted(found, key=lambda c: int(c.labels.get(f"{LABEL}.instance", "0") or 0))


def remove_name(client: Any, name: str, paths: DeployPaths) -> None:
    """``docker rm -f NAME`` — but never a container of another install root or product."""
    try:
        old = client.containers.get(name)
    except Exception:  # NotFound
        return
    if old.labels.get(f"{LABEL}.root") != str(paths.root.path) or old.labels.get(f"{LABEL}.deploy") != paths.name:
        raise StartFailed(
            f"a container named {name} exists and is not {paths.name} of {paths.root.path} "
            f"(labels {old.labels}); remove it with 'docker rm -f {name}'"
        )
    old.remove(force=True)


def run(
    client: Any,
    spec: ContainerSpec,
    paths: DeployPaths,
    *,
    host: str,
    port: int,
    timeout: float = 180.0,
    say: Callable[[str], None] = print,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Recreate the container of ``spec`` (rm -f + run) and wait until /ready says 200."""
    prepare_host(paths)
    remove_name(client, spec.name, paths)
    # A standby of an interrupted switch (runtimes/docker.py) is this instance too: one container only.
    instance = spec.labels.get(f"{LABEL}.instance")
    for other in containers(client, paths):
        if other.labels.get(f"{LABEL}.instance") == instance:
            say(f"removing container {other.name}")
            other.remove(force=True)
    container = client.containers.run(detach=True, **spec.sdk_kwargs())
    say(
        f"started container {spec.name} ({container.short_id}); waiting up to {timeout:.0f} s for "
        f"http://{probe_host(host)}:{port}/ready"
    )
    deadline = time.monotonic() + timeout
    last: tuple[Any, Any] = (None, None)
    release = spec.labels.get(f"{LABEL}.release")
    while True:
        container.reload()
        st = container.attrs["State"]
        if st.get("Status") in ("exited", "dead") or st.get("Restarting") or container.attrs.get("RestartCount", 0):
            detail = failure_detail(container, paths)
            container.remove(force=True)  # no crash loop left behind, like procs.start kills what it started
            raise StartFailed(
                f"container {spec.name} stopped before it was ready (exit code {st.get('ExitCode')}, "
                f"status {st.get('Status')}); removed it\n{detail}"
            )
        status, body = get_ready(host, port, timeout=2.0, headers=headers)
        # The answer must come from this release: another service on the port is not our container.
        if status == 200 and body and body.get("deploy") == paths.name and body.get("release") == release:
            return info(container)
        last = (status, body)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    detail = failure_detail(container, paths)
    container.remove(force=True)
    raise StartFailed(
        f"container {spec.name} not ready after {timeout:.0f} s (last /ready answer: {last[0]} "
        f"{last[1]}); removed it\n{detail}"
    )


def failure_detail(container: Any, paths: DeployPaths) -> str:
    parts = []
    try:
        parts.append(
            f"--- docker logs {container.name} (last lines) ---\n"
            + container.logs(tail=20).decode("utf-8", "replace").rstrip()
        )
    except Exception:  # the container may be gone already
        pass
    if paths.error_log.exists():
        parts.append(f"--- last lines of {paths.error_log} ---\n{tail(paths.error_log)}")
    return "\n".join(parts)


def start(
    paths: DeployPaths,
    top: Path,
    release: Path,
    version: str,
    *,
    host: str,
    port: int,
    timeout: float = 180.0,
    instance: int = 1,
    client: Any = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Load the package's image if needed, then (re)create instance ``instance`` and wait for /ready."""
    client = client or connect(Path(top) / "original" / "wheels")
    spec = spec_for(
        paths, release, version, image_id_or_tag(client, image_ref(top), say), host=host, port=port, instance=instance
    )
    # /ready names deploy and release only to ops rights: a one-off key when the ops policy wants one.
    with probe.credential(paths.data, (OPS,), probe_host(host), ttl=timeout + 60) as auth:
        return run(client, spec, paths, host=host, port=port, timeout=timeout, say=say, headers=auth)


def info(container: Any) -> dict[str, Any]:
    a = container.attrs
    st = a.get("State") or {}
    labels = a.get("Config", {}).get("Labels") or {}
    return {
        "name": container.name,
        "id": container.id[:12],
        "status": st.get("Status"),
        "running": bool(st.get("Running")) and not st.get("Restarting"),
        "health": (st.get("Health") or {}).get("Status"),
        "pid": st.get("Pid") or None,
        "restart_count": a.get("RestartCount", 0),
        "exit_code": st.get("ExitCode"),
        "started_at": st.get("StartedAt"),
        "image": a.get("Config", {}).get("Image"),
        "version": labels.get(f"{LABEL}.version"),
        "instance": labels.get(f"{LABEL}.instance"),
        "release": labels.get(f"{LABEL}.release"),
    }


def status(
    paths: DeployPaths,
    *,
    host: str | None = None,
    port: int | None = None,
    probe: bool = True,
    client: Any = None,
) -> dict[str, Any]:
    """``running`` (every container up), ``stopped``, ``failed`` (restarting or crashed) or ``absent``."""
    client = client or connect()
    found = []
    for c in containers(client, paths):
        c.reload()
        found.append(info(c))
    if not found:
        state = "absent"
    elif all(c["running"] for c in found):
        state = "running"
    elif any(
        c["status"] == "restarting" or (c["status"] == "exited" and c["exit_code"] not in (0, 143)) for c in found
    ):
        state = "failed"
    else:
        state = "stopped"
    ready = detail = None
    if probe and state == "running" and port:
        code, body = get_ready(host or "127.0.0.1", int(port))
        ready, detail = code == 200, (body if body is not None else code)
    return {
        "runtime": "docker",
        "state": state,
        "containers": found,
        "pid": found[0]["pid"] if found else None,
        "ready": ready,
        "ready_detail": detail,
    }


def stop(paths: DeployPaths, graceful: float, *, client: Any = None, say: Callable[[str], None] = print) -> bool:
    """``docker stop`` (SIGTERM, SIGKILL after graceful + 5 s); the containers stay. False if none ran."""
    client = client or connect()
    stopped = False
    for c in containers(client, paths):
        c.reload()
        if c.status in ("running", "restarting", "paused"):
            say(f"stopping container {c.name}")
            c.stop(timeout=int(graceful + 5))
            c.reload()
            if c.status not in ("exited", "created", "dead"):
                raise StopFailed(f"container {c.name} is still {c.status} after docker stop")
            stopped = True
    return stopped


def remove(paths: DeployPaths, *, client: Any = None, say: Callable[[str], None] = print) -> list[str]:
    """``docker rm -f`` every container of the deploy; returns their names."""
    client = client or connect()
    names = []
    for c in containers(client, paths):
        say(f"removing container {c.name}")
        c.remove(force=True)
        names.append(c.name)
    return names
