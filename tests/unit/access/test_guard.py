"""access/guard.py: each worker follows access.json by one stat per request, keeps the last good
state when the file breaks, and reads the key from the three places clients put it."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from werkzeug.datastructures import Headers, MultiDict

from visionpack.access import guard as guard_mod, store
from visionpack.access.guard import LOCKED, AccessGuard, presented_key
from visionpack.access.model import AccessState
from visionpack.config import ServiceConfig
from visionpack.errors import AccessTokenInvalid

REMOTE = "10.1.2.3"


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


def test_without_data_dir_the_defaults_apply():
    g = AccessGuard.for_config(ServiceConfig())
    assert g.path is None and g.state() == AccessState()


def test_config_data_dir_names_the_file(tmp_path):
    g = AccessGuard.for_config(ServiceConfig(data_dir=str(tmp_path)))
    assert g.path == tmp_path / "access.json"


def test_changes_apply_on_the_next_call(data):
    g = AccessGuard(data / "access.json")
    assert g.state() == AccessState()
    key, rec = store.create_key(data, ("infer",))
    store.set_policy(data, "infer", "key")
    assert g.authorize("infer", REMOTE, key).key_id == rec.id
    store.revoke_key(data, rec.id)
    with pytest.raises(AccessTokenInvalid) as exc:
        g.authorize("infer", REMOTE, key)
    assert exc.value.reason == "revoked"
    store.set_policy(data, "infer", "open")
    assert g.authorize("infer", REMOTE, None).via == "open"


def test_a_deleted_file_means_defaults_again(data, caplog):
    g = AccessGuard(data / "access.json")
    store.set_policy(data, "infer", "key")
    assert g.state().policies["infer"] == "key"
    (data / "access.json").unlink()
    with caplog.at_level(logging.INFO, "visionpack.access"):
        assert g.state() == AccessState()
    assert "is gone" in caplog.text


def test_a_broken_file_keeps_the_last_good_state_and_logs_once(data, caplog):
    g = AccessGuard(data / "access.json")
    key, _ = store.create_key(data, ("infer",))
    store.set_policy(data, "infer", "key")
    good = g.state()
    (data / "access.json").write_text("{broken")
    with caplog.at_level(logging.ERROR, "visionpack.access"):
        for _ in range(5):
            assert g.state() is good
            assert g.authorize("infer", REMOTE, key).via == "key"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "keeping the last good" in errors[0].getMessage()
    # The operator repairs it (the installer refuses to write over a broken file): picked up again.
    store.save(data, AccessState({"infer": "open"}))
    assert g.state().policies["infer"] == "open"


def test_a_file_broken_from_the_start_opens_nothing(data, caplog):
    data.mkdir()
    (data / "access.json").write_text('{"schema": 1, "policies": {"infer": "wide-open"}}')
    g = AccessGuard(data / "access.json")
    with caplog.at_level(logging.ERROR, "visionpack.access"):
        assert g.state() is LOCKED
        assert g.state() is LOCKED
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    for scope in ("infer", "gallery", "ops"):
        with pytest.raises(AccessTokenInvalid):
            g.authorize(scope, "127.0.0.1", None)


def test_an_unreadable_file_is_handled_like_a_broken_one(data):
    (data / "access.json").mkdir(parents=True)  # open() fails with IsADirectoryError
    g = AccessGuard(data / "access.json")
    assert g.state() is LOCKED


def test_one_stat_and_no_read_per_request_while_unchanged(data, monkeypatch):
    store.set_policy(data, "gallery", "key")
    g = AccessGuard(data / "access.json")
    g.state()
    stats, opens = [], []
    real_stat = os.stat
    monkeypatch.setattr(guard_mod.os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    monkeypatch.setattr(guard_mod, "open", lambda *a, **k: opens.append(a) or open(*a, **k), raising=False)  # noqa: SIM115  (a spy on open)
    for _ in range(10):
        g.state()
    assert len(stats) == 10 and opens == []
    store.set_policy(data, "gallery", "open")
    assert g.state().policies["gallery"] == "open"
    assert len(opens) == 1


def test_threads_see_consistent_states_while_the_file_changes(data):
    g = AccessGuard(data / "access.json")
    store.set_policy(data, "infer", "open")
    stop, errors = threading.Event(), []

    def hammer():
        while not stop.is_set():
            try:
                assert g.state().policies["infer"] in ("open", "key")
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            store.set_policy(data, "infer", ("key", "open")[i % 2])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert g.state().policies["infer"] == "open"  # the last write (i = 29)


# --- where the key comes from ------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, query, want",
    [
        ({"Authorization": "Bearer vpk_a"}, {}, "vpk_a"),
        ({"Authorization": "bearer   vpk_a  "}, {}, "vpk_a"),
        ({"X-API-Key": "vpk_b"}, {}, "vpk_b"),
        ({"x-api-key": " vpk_b "}, {}, "vpk_b"),
        ({}, {"access_token": "vpk_c"}, "vpk_c"),
        ({"Authorization": "Bearer vpk_a", "X-API-Key": "vpk_b"}, {"access_token": "vpk_c"}, "vpk_a"),
        ({"X-API-Key": "vpk_b"}, {"access_token": "vpk_c"}, "vpk_b"),
        ({"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": "vpk_b"}, {}, "vpk_b"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, {}, None),
        ({"Authorization": "Bearer "}, {}, None),
        ({"X-API-Key": "   "}, {"access_token": ""}, None),
        ({}, {}, None),
    ],
)
def test_presented_key(headers, query, want):
    assert presented_key(Headers(headers), MultiDict(query)) == want


@pytest.mark.parametrize(
    "target, logged",
    [
        ("/d/ImageClassification", "/d/ImageClassification"),
        ("/d/x?access_token=vpk_secret", "/d/x?access_token=***"),
        ("/d/x?a=1&access_token=vpk_secret&b=2", "/d/x?a=1&access_token=***&b=2"),
        ("/d/x?access%5Ftoken=vpk_secret", "/d/x?access%5Ftoken=***"),
        ("/d/x?access_token", "/d/x?access_token=***"),
        ("/d/x?my_access_token=1&token=2", "/d/x?my_access_token=1&token=2"),
    ],
)
def test_redact_target_hides_the_query_key(target, logged):
    assert guard_mod.redact_target(target) == logged
