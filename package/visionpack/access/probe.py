"""The installer's own credential for probing a deploy whose policies would refuse it.

install/upgrade/rollback prove a release by asking it (health.prove: a sample inference; the
Docker runtime: /ready's deploy and release). Those requests come from this machine, so with the
default policies they pass as loopback. When the operator set ``infer`` or ``ops`` to ``key`` (or
the probe must go to a non-loopback address the service is bound to), the installer mints a key
for just that probe: stored hashed like any other, expiring on its own after ``ttl`` seconds, and
deleted as soon as the probe is done. Nothing secret is ever left on disk, and ``status`` (which
only needs ready / not ready, which /ready always tells) never writes the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import VisionpackError
from . import store
from .model import is_loopback

NAME = "install.py probe"
HEADER = "X-API-Key"


def needs_key(data_dir: Path, scopes: Sequence[str], peer: str) -> bool:
    """True when a request from ``peer`` without a key would be refused in one of ``scopes``."""
    try:
        state = store.load(data_dir)
    except VisionpackError:
        return False  # a broken file: a key could not be added either; the service's answer says why
    for scope in scopes:
        policy = state.policies[scope]
        if policy == "key" or (policy == "loopback" and not is_loopback(peer)):
            return True
    return False


@contextmanager
def credential(data_dir: Path, scopes: Sequence[str], peer: str, ttl: float = 3600.0) -> Iterator[dict[str, str]]:
    """HTTP headers for the probe: ``{}`` when the policies let it in anyway, else a fresh key's."""
    if not needs_key(Path(data_dir), scopes, peer):
        yield {}
        return
    key, rec = store.create_key(Path(data_dir), scopes, NAME, expires_in=ttl)
    try:
        yield {HEADER: key}
    finally:
        try:
            store.remove_key(Path(data_dir), rec.id)
        except (VisionpackError, OSError):
            pass  # it expires by itself; the next change of the file drops it
