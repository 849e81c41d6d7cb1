"""access/store.py: keys and policies written atomically, hashed, locked, and refused when broken."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from visionpack.access import store
from visionpack.access.model import AccessState, key_hash
from visionpack.errors import ConfigInvalid, UsageError
from visionpack.installer import serviceuser


def test_no_file_means_defaults(tmp_path):
    state = store.load(tmp_path / "data")
    assert state == AccessState()


def test_create_stores_only_the_hash_mode_0640(tmp_path):
    data = tmp_path / "data"
    key, rec = store.create_key(data, ("infer", "gallery"), "crm")
    raw = (data / "access.json").read_bytes()
    assert key.encode() not in raw
    assert key_hash(key).encode() in raw
    assert stat.S_IMODE(os.stat(data / "access.json").st_mode) == 0o640
    assert not (data / store.STAGED).exists()
    state = store.load(data)
    assert state.match(key) == rec
    assert (rec.name, rec.scopes, rec.revoked, rec.expires_at) == ("crm", ("infer", "gallery"), False, None)


def test_each_key_gets_its_own_id(tmp_path):
    ids = {store.create_key(tmp_path, ("infer",))[1].id for _ in range(20)}
    assert len(ids) == 20


def test_revoke_marks_and_is_idempotent(tmp_path):
    key, rec = store.create_key(tmp_path, ("infer",))
    done, before = store.revoke_key(tmp_path, rec.id)
    assert before is False and done.revoked and done.revoked_at
    again, before = store.revoke_key(tmp_path, rec.id)
    assert before is True and again.revoked_at == done.revoked_at
    assert store.load(tmp_path).match(key).revoked


def test_revoke_unknown_id_is_a_usage_error_naming_the_known_ones(tmp_path):
    _, rec = store.create_key(tmp_path, ("infer",))
    with pytest.raises(UsageError, match=rec.id):
        store.revoke_key(tmp_path, "deadbeef")


def test_set_policy_returns_the_previous_one(tmp_path):
    assert store.set_policy(tmp_path, "gallery", "key") == "loopback"
    assert store.set_policy(tmp_path, "gallery", "open") == "key"
    assert store.load(tmp_path).policies["gallery"] == "open"


@pytest.mark.parametrize("scope, policy", [("admin", "key"), ("infer", "closed")])
def test_set_policy_refuses_unknown_names(tmp_path, scope, policy):
    with pytest.raises(UsageError):
        store.set_policy(tmp_path, scope, policy)
    assert not (tmp_path / "access.json").exists()


def test_remove_key_deletes_the_record(tmp_path):
    _, a = store.create_key(tmp_path, ("infer",))
    _, b = store.create_key(tmp_path, ("ops",))
    store.remove_key(tmp_path, a.id)
    assert [k.id for k in store.load(tmp_path).keys] == [b.id]


def test_expired_keys_are_dropped_by_the_next_change(tmp_path):
    _, probe = store.create_key(tmp_path, ("ops",), "install.py probe", expires_in=-1)
    _, kept = store.create_key(tmp_path, ("infer",))
    assert [k.id for k in store.load(tmp_path).keys] == [kept.id]
    assert probe.id != kept.id


@pytest.mark.parametrize(
    "values, scopes",
    [
        (None, ("infer",)),
        (["gallery"], ("gallery",)),
        (["infer", "ops"], ("infer", "ops")),
        (["infer,gallery", "ops"], ("infer", "gallery", "ops")),
        (["ops, ops"], ("ops",)),
    ],
)
def test_parse_scopes(values, scopes):
    assert store.parse_scopes(values) == scopes


@pytest.mark.parametrize("values", [["admin"], ["infer,"], [""]])
def test_parse_scopes_refuses_unknown(values):
    with pytest.raises(UsageError, match="unknown scope"):
        store.parse_scopes(values)


@pytest.mark.parametrize("name", ["x" * 65, "tab\there", "new\nline"])
def test_key_names_are_short_and_printable(name):
    with pytest.raises(UsageError):
        store.check_name(name)


def test_corrupt_file_is_refused_and_left_alone(tmp_path):
    (tmp_path / "access.json").write_text('{"schema": 1, "policies": {"infer": "sometimes"}}')
    with pytest.raises(ConfigInvalid, match="not a valid access file .*policy of infer"):
        store.load(tmp_path)
    with pytest.raises(ConfigInvalid):
        store.create_key(tmp_path, ("infer",))
    assert "sometimes" in (tmp_path / "access.json").read_text()


def test_unreadable_file_is_config_invalid(tmp_path):
    (tmp_path / "access.json").mkdir()
    with pytest.raises(ConfigInvalid, match="cannot read"):
        store.load(tmp_path)


def test_ownership_is_set_before_the_rename(tmp_path, monkeypatch):
    """A worker must never meet the new file under the old owner (root:root 0640 unreadable)."""
    store.set_policy(tmp_path, "ops", "key")
    seen = []

    def chown(path):
        seen.append((os.path.basename(path), json.loads((tmp_path / "access.json").read_text())["policies"]["ops"]))

    monkeypatch.setattr(serviceuser, "chown_for_service", chown)
    store.set_policy(tmp_path, "ops", "open")
    assert seen == [(store.STAGED, "key")]  # the staged file, while the old content is still in place
    assert store.load(tmp_path).policies["ops"] == "open"


def test_concurrent_changes_lose_nothing(tmp_path):
    created, errors = [], []

    def make():
        try:
            for _ in range(5):
                created.append(store.create_key(tmp_path, ("infer",))[1].id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(k.id for k in store.load(tmp_path).keys) == sorted(created) and len(created) == 30


def test_readers_never_see_a_partial_file(tmp_path):
    store.create_key(tmp_path, ("infer",))
    stop, bad = threading.Event(), []

    def read():
        while not stop.is_set():
            try:
                AccessState.from_json((tmp_path / "access.json").read_bytes())
            except ValueError as exc:
                bad.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(40):
            store.set_policy(tmp_path, "infer", ("open", "key")[i % 2])
    finally:
        stop.set()
        reader.join()
    assert bad == []
