"""Fixtures for the licensing tests: a real vendor key pair and real licenses for THIS machine.

Nothing fakes the machine: licenses that must not match are issued from requests whose
component hashes were changed, exactly like a license made for another machine. A pytest plugin
(tests/conftest.py's ``pytest_plugins``) because the licensing and vendor tool tests of both tiers
use them: one definition, one key pair per session.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import pytest

from tests.paths import REPO
from visionpack.licensing import fingerprint as fpmod

VENDOR_TOOL = REPO / "vendor" / "visionpack_vendor.py"


def _load_vendor():
    spec = importlib.util.spec_from_file_location("visionpack_vendor_under_test", VENDOR_TOOL)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


vendor_tool = _load_vendor()


@pytest.fixture(scope="session")
def vendor():
    return vendor_tool


@pytest.fixture(scope="session")
def keypair(tmp_path_factory):
    """(private key object, keys_dir holding only the public key, private key path)."""
    root = tmp_path_factory.mktemp("vendor-keys")
    priv_path, pub_path = vendor_tool.keygen(root / "secret")
    keys_dir = root / "licenses"
    keys_dir.mkdir()
    (keys_dir / pub_path.name).write_bytes(pub_path.read_bytes())
    return vendor_tool.load_private_key(priv_path), keys_dir, priv_path


@pytest.fixture(scope="session")
def other_keypair(tmp_path_factory):
    root = tmp_path_factory.mktemp("other-vendor")
    priv_path, _ = vendor_tool.keygen(root)
    return vendor_tool.load_private_key(priv_path)


@pytest.fixture(scope="session")
def machine() -> fpmod.Fingerprint:
    fp = fpmod.collect()
    present = fp.present()
    # The rule tests need a machine id and at least two more components; a host without them
    # has a fingerprint too weak to license, which is itself worth failing on.
    assert "machine_id" in present and len(present) >= 3, f"fingerprint too thin on this host: {sorted(present)}"
    return fp


@pytest.fixture(scope="session")
def request_doc(machine) -> dict[str, Any]:
    return machine.to_request("test customer")


def other_hash(component: str) -> str:
    return fpmod.component_hash(component, "some-other-machine")


@pytest.fixture
def issue(keypair, request_doc) -> Callable[..., bytes]:
    """issue(now=..., change=[components], edit=callable(payload), key=..., **build_payload kwargs) -> bytes."""
    import time

    def _issue(
        now: float | None = None, change: tuple[str, ...] = (), edit=None, key=None, request=None, **kwargs: Any
    ) -> bytes:
        req = dict(request or request_doc)
        comps = dict(req["components"])
        for name in change:
            comps[name] = other_hash(name)
        req["components"] = comps
        payload = vendor_tool.build_payload(req, now=time.time() if now is None else now, **kwargs)
        if edit is not None:
            edit(payload)
        return vendor_tool.sign(payload, key or keypair[0])

    return _issue
