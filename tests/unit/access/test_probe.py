"""access/probe.py: the installer mints a one-off key only when its probe would be refused, and
removes it afterwards."""

from __future__ import annotations

import pytest

from visionpack.access import probe, store
from visionpack.access.model import decide


@pytest.mark.parametrize(
    "policy, peer, needed",
    [
        ("open", "127.0.0.1", False),
        ("open", "10.0.0.5", False),
        ("loopback", "127.0.0.1", False),
        ("loopback", "::1", False),
        ("loopback", "10.0.0.5", True),
        ("key", "127.0.0.1", True),
        ("key", "10.0.0.5", True),
    ],
)
def test_needs_key(tmp_path, policy, peer, needed):
    store.set_policy(tmp_path, "ops", policy)
    assert probe.needs_key(tmp_path, ("ops",), peer) is needed
    assert probe.needs_key(tmp_path, ("infer",), peer) is False  # infer stays open


def test_no_key_when_not_needed_and_no_write(tmp_path):
    with probe.credential(tmp_path, ("infer", "ops"), "127.0.0.1") as headers:
        assert headers == {}
    assert not (tmp_path / "access.json").exists()


def test_a_broken_file_gets_no_key(tmp_path):
    (tmp_path / "access.json").write_text("{")
    with probe.credential(tmp_path, ("ops",), "10.0.0.5") as headers:
        assert headers == {}


def test_minted_key_works_while_the_probe_runs_and_is_gone_after(tmp_path):
    store.set_policy(tmp_path, "infer", "key")
    with probe.credential(tmp_path, ("infer",), "127.0.0.1", ttl=600) as headers:
        key = headers[probe.HEADER]
        state = store.load(tmp_path)
        grant = decide(state, "infer", "127.0.0.1", key)
        rec = state.key(grant.key_id)
        assert rec.name == probe.NAME and rec.expires_at is not None and rec.scopes == ("infer",)
    assert store.load(tmp_path).keys == ()


def test_key_is_removed_when_the_probe_fails(tmp_path):
    store.set_policy(tmp_path, "ops", "key")
    with pytest.raises(RuntimeError), probe.credential(tmp_path, ("ops",), "127.0.0.1"):
        raise RuntimeError("probe failed")
    assert store.load(tmp_path).keys == ()
