"""The docker runtime (installer/runtimes/docker.py) on a real engine: start, status,
upgrade and rollback by recreating the container, stop, remove.

The deploy is installed ``--stopped`` by install.py (process layout) and marked
``state["runtime_kind"] = "docker"`` as ``install --runtime docker`` records it; a second release is
built beside it with the installer's own release builder, as ``upgrade`` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_docker_fixtures import (  # noqa: E402,F401
    DEPLOY,
    REPO,
    classify_cat,
    docker_client,
    docker_root,
    runtime_image,
    shared_runtime,
    source_tree,
    vendor,
    wheelhouse,
)

from visionpack.errors import StartFailed  # noqa: E402
from visionpack.installer import journal, release, switch  # noqa: E402
from visionpack.installer.context import Context  # noqa: E402
from visionpack.installer.installed import Installed  # noqa: E402
from visionpack.installer.layout import Root  # noqa: E402
from visionpack.installer.procs import get_ready  # noqa: E402
from visionpack.installer.runtimes import docker_containers  # noqa: E402
from visionpack.installer.runtimes.docker import DockerRuntime  # noqa: E402
from visionpack.installer.source import Source  # noqa: E402

NEXT = "1.0.1-docker-test"


def switch_release(ctx, paths, state, target, *, op, timeout):
    """What upgrade and rollback run for a docker deploy."""
    return switch.activate(ctx, paths, state, target, op=op, timeout=timeout, runtime=DockerRuntime(ctx.source.top))


@pytest.fixture(scope="module")
def ctx_state(docker_root):
    root, port = docker_root
    ctx = Context(Root(root), Source(REPO), say=lambda _m: None, warn=lambda _m: None)
    paths = ctx.root.deploy(DEPLOY)
    state = journal.load(paths)
    state["runtime_kind"] = "docker"
    journal.save(paths, state)
    # A second kept release, built exactly as 'upgrade' builds one.
    entry = ctx.source.entry(DEPLOY)
    rel = paths.release(NEXT)
    cfg = release.service_config(ctx.root, paths, entry, rel, host=state["host"], port=port, workers=1)
    release.build(ctx.root, paths, ctx.source, entry, NEXT, cfg, Path(state["releases"][state["release"]]["venv"]))
    return ctx, paths, state, port


def test_start_status_of_a_docker_deploy(ctx_state, docker_client):
    ctx, paths, state, port = ctx_state
    first = state["release"]
    assert DockerRuntime().describe(paths, state)["state"] == "stopped"  # what deployment.describe returns for it
    pid = DockerRuntime().start(ctx, Installed(paths, state), timeout=300)
    d = DockerRuntime().describe(paths, state)
    assert (d["state"], d["runtime"], d["pid"], d["ready"], d["running_release"]) == (
        "running",
        "docker",
        pid,
        True,
        first,
    )
    assert d["worker_pids"], d  # gunicorn's workers, seen from the host
    # The image is recorded for the release, and its start-1.sh is the docker flavour.
    assert state["releases"][first]["image"]["id"].startswith("sha256:")
    script = (paths.release(first) / "start" / "start-1.sh").read_text()
    assert "docker rm -f" in script and "--network host" in script
    assert classify_cat(port)[0] == 200


def test_upgrade_and_rollback_recreate_the_container(ctx_state, docker_client):
    ctx, paths, state, port = ctx_state
    first = state["release"]
    journal.begin(paths, state, "upgrade", "start", release=NEXT, **{"from": first})
    result = switch_release(ctx, paths, state, NEXT, op="upgrade", timeout=300)
    assert (result["from"], result["release"], result["started"]) == (first, NEXT, True)
    assert state["release"] == NEXT and state["operation"] is None
    assert state["releases"][NEXT]["image"] == state["releases"][first]["image"]  # kept with its image
    assert json.loads(paths.state.read_text())["release"] == NEXT
    assert (paths.dir / "current").resolve() == paths.release(NEXT).resolve()
    (c,) = docker_client.containers.list(filters={"label": f"visionpack.deploy={DEPLOY}"})
    assert c.labels["visionpack.version"] == NEXT
    assert get_ready("127.0.0.1", port)[1]["release"] == str(paths.release(NEXT))
    assert classify_cat(port)[0] == 200

    journal.begin(paths, state, "rollback", "start", release=first, **{"from": NEXT})
    switch_release(ctx, paths, state, first, op="rollback", timeout=300)
    assert state["release"] == first
    assert DockerRuntime().describe(paths, state)["running_release"] == first
    assert get_ready("127.0.0.1", port)[1]["release"] == str(paths.release(first))


def test_a_release_that_does_not_start_is_undone(ctx_state, docker_client):
    ctx, paths, state, port = ctx_state
    current = state["release"]
    broken = "9.9.9-broken"
    entry = ctx.source.entry(DEPLOY)
    rel = paths.release(broken)
    cfg = release.service_config(ctx.root, paths, entry, rel, host=state["host"], port=port, workers=1)
    release.build(ctx.root, paths, ctx.source, entry, broken, cfg, Path(state["releases"][current]["venv"]))
    (rel / "models" / "efficientnet_lite0_imagenet" / "inference.pdiparams").write_bytes(b"not weights")
    journal.begin(paths, state, "upgrade", "start", release=broken, **{"from": current})
    with pytest.raises(StartFailed):
        switch_release(ctx, paths, state, broken, op="upgrade", timeout=180)
    # The old release serves again, the broken one is gone, nothing is half done.
    assert state["release"] == current and state["operation"] is None
    assert not rel.exists()
    assert DockerRuntime().describe(paths, state)["running_release"] == current
    assert classify_cat(port)[0] == 200


def test_a_master_that_cannot_hand_over_gets_the_recreate_fallback(ctx_state, docker_client, monkeypatch):
    # A container started from a release built before the container handover (its master serves
    # no release-named handover socket): EasyDL's recreate, with a warning, still ends on one
    # container of the target, and a normal handover works again from there.
    _, paths, state, port = ctx_state
    warned: list[str] = []
    ctx = Context(Root(paths.root.path), Source(REPO), say=lambda _m: None, warn=warned.append)
    current = state["release"]

    def no_handover(from_release, port):
        raise ConnectionError(f"no handover socket for {from_release} (an older master)")

    monkeypatch.setattr(DockerRuntime, "_check_handover", staticmethod(no_handover))
    journal.begin(paths, state, "rollback", "start", release=NEXT, **{"from": current})
    result = switch_release(ctx, paths, state, NEXT, op="rollback", timeout=300)
    assert (result["release"], result["started"], result["handed_over"]) == (NEXT, True, False)
    assert any("stop-then-start" in w for w in warned), warned
    (c,) = docker_client.containers.list(all=True, filters={"label": f"visionpack.deploy={DEPLOY}"})
    assert (c.name, c.labels["visionpack.version"], state["release"]) == ("visionpack-demo-classify-1", NEXT, NEXT)
    assert classify_cat(port)[0] == 200
    monkeypatch.undo()
    journal.begin(paths, state, "rollback", "start", release=current, **{"from": NEXT})
    result = switch_release(ctx, paths, state, current, op="rollback", timeout=300)
    assert (result["release"], result["handed_over"]) == (current, True)
    assert DockerRuntime().describe(paths, state)["running_release"] == current


def test_stop_and_remove_a_docker_deploy(ctx_state, docker_client):
    ctx, paths, state, port = ctx_state
    assert DockerRuntime().stop(ctx, Installed(paths, state)) is True
    state["desired"] = "stopped"
    assert DockerRuntime().describe(paths, state)["state"] == "stopped"
    assert docker_containers.remove(paths, say=lambda _m: None) == ["visionpack-demo-classify-1"]
    assert DockerRuntime().describe(paths, state)["containers"] == []
    assert get_ready("127.0.0.1", port) == (None, None)
