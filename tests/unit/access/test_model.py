"""access/model.py: the key format, access.json's validation, and the whole decision table."""

from __future__ import annotations

import json
import re

import pytest

from visionpack.access import model
from visionpack.access.model import AccessState, KeyRecord, decide, is_loopback, key_hash
from visionpack.errors import AccessTokenInvalid, NoPermission

LOOPBACK_PEERS = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]
REMOTE_PEERS = ["10.1.2.3", "192.168.0.7", "::ffff:10.0.0.1", "2001:db8::1", "", None, "not-an-ip", "0.0.0.0"]


def record(kid: str, key: str, scopes, **kw) -> KeyRecord:
    return KeyRecord.from_dict(
        {
            "id": kid,
            "name": kid,
            "scopes": list(scopes),
            "sha256": key_hash(key),
            "created_at": "2025-01-01T00:00:00Z",
            **kw,
        }
    )


def test_new_keys_are_random_urlsafe_and_long():
    keys = {model.new_key() for _ in range(200)}
    assert len(keys) == 200
    for k in keys:
        assert re.fullmatch(r"vpk_[A-Za-z0-9_-]{43}", k)


def test_hash_is_sha256_hex_of_the_key():
    import hashlib

    assert key_hash("vpk_abc") == hashlib.sha256(b"vpk_abc").hexdigest()


@pytest.mark.parametrize("peer", LOOPBACK_PEERS)
def test_loopback_peers(peer):
    assert is_loopback(peer)


@pytest.mark.parametrize("peer", REMOTE_PEERS)
def test_other_peers_are_not_loopback(peer):
    assert not is_loopback(peer)


def test_defaults_when_the_file_says_nothing():
    state = AccessState.from_json('{"schema": 1}')
    assert dict(state.policies) == {"infer": "open", "gallery": "loopback", "ops": "loopback"}
    assert state.keys == ()


def test_round_trip_keeps_policies_and_keys():
    state = AccessState(
        {"infer": "key", "gallery": "open", "ops": "loopback"},
        (
            record("0000000a", "vpk_a", ["infer", "ops"]),
            record("0000000b", "vpk_b", ["gallery"], revoked=True, revoked_at="2025-01-02T00:00:00Z"),
        ),
    )
    again = AccessState.from_json(state.to_json())
    assert again == state
    doc = json.loads(state.to_json())
    assert doc["schema"] == 1 and "vpk_a" not in state.to_json()


@pytest.mark.parametrize(
    "text, why",
    [
        ("{", "not valid JSON"),
        ("[]", "schema 1"),
        ('{"schema": 2}', "schema 1"),
        ('{"schema": 1, "policies": []}', "policies must be an object"),
        ('{"schema": 1, "policies": {"admin": "open"}}', "unknown scope 'admin'"),
        ('{"schema": 1, "policies": {"infer": "closed"}}', "policy of infer is 'closed'"),
        ('{"schema": 1, "keys": {}}', "keys must be a list"),
        ('{"schema": 1, "keys": [1]}', "each key must be an object"),
        ('{"schema": 1, "keys": [{"id": "XYZ"}]}', "not 8 lowercase hex"),
        ('{"schema": 1, "keys": [{"id": "0000000a", "scopes": []}]}', "scopes must be a non-empty list"),
        ('{"schema": 1, "keys": [{"id": "0000000a", "scopes": ["root"]}]}', "scopes must be a non-empty list"),
        ('{"schema": 1, "keys": [{"id": "0000000a", "scopes": ["infer"], "sha256": "abc"}]}', "sha256 must be 64"),
        (
            '{"schema": 1, "keys": [{"id": "0000000a", "scopes": ["infer"], "sha256": "'
            + "a" * 64
            + '", "created_at": 5}]}',
            "must be strings",
        ),
        (
            '{"schema": 1, "keys": [{"id": "0000000a", "scopes": ["infer"], "sha256": "'
            + "a" * 64
            + '", "created_at": "x", "revoked": "yes"}]}',
            "revoked true or false",
        ),
        (
            '{"schema": 1, "keys": [{"id": "0000000a", "scopes": ["infer"], "sha256": "'
            + "a" * 64
            + '", "created_at": "x", "revoked_at": 3}]}',
            "revoked_at must be a string",
        ),
        (
            '{"schema": 1, "keys": [{"id": "0000000a", "scopes": ["infer"], "sha256": "'
            + "a" * 64
            + '", "created_at": "x", "expires_at": "soon"}]}',
            "not an ISO time",
        ),
        (
            '{"schema": 1, "keys": [{"id": "0000000a", "scopes": ["infer"], "sha256": "'
            + "a" * 64
            + '", "created_at": "x", "expires_at": 5}]}',
            "UTC time string",
        ),
    ],
)
def test_invalid_files_are_refused_with_the_reason(text, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        AccessState.from_json(text)


def test_duplicate_ids_are_refused():
    rec = record("0000000a", "vpk_a", ["infer"]).to_dict()
    with pytest.raises(ValueError, match="share an id"):
        AccessState.from_json(json.dumps({"schema": 1, "keys": [rec, rec]}))


def test_match_finds_the_record_and_nothing_else():
    a, b = record("0000000a", "vpk_a", ["infer"]), record("0000000b", "vpk_b", ["ops"])
    state = AccessState(keys=(a, b))
    assert state.match("vpk_b") is b
    assert state.match("vpk_a") is a
    assert state.match("vpk_c") is None
    assert state.match("") is None


def test_public_view_has_no_hash_and_says_whether_active():
    rec = record("0000000a", "vpk_a", ["infer"], revoked=True, revoked_at="2025-01-02T00:00:00Z")
    view = rec.public()
    assert "sha256" not in view and view["active"] is False and view["revoked"] is True


def test_expiry():
    rec = record("0000000a", "vpk_a", ["infer"], expires_at="2030-01-01T00:00:00Z")
    t = rec._expires
    assert rec.active(t - 1) and not rec.expired(t - 1)
    assert rec.expired(t) and not rec.active(t)


# --- the decision table: every scope x policy x peer kind x credential --------------------

CREDENTIALS = ("none", "bad", "revoked", "other-scopes", "with-scope")
KEYS = {
    "bad": "vpk_not-a-key-anyone-made",
    "revoked": "vpk_revoked",
    "other-scopes": "vpk_other",
    "with-scope": "vpk_right",
}


def state_for(scope: str, policy: str) -> AccessState:
    others = [s for s in model.SCOPES if s != scope]
    return AccessState(
        {**model.DEFAULT_POLICIES, scope: policy},
        (
            record("0000000a", KEYS["revoked"], model.SCOPES, revoked=True, revoked_at="2025-01-02T00:00:00Z"),
            record("0000000b", KEYS["other-scopes"], others),
            record("0000000c", KEYS["with-scope"], [scope]),
        ),
    )


def expected(policy: str, loopback: bool, cred: str):
    """What the README promises, written out independently of model.decide."""
    if policy == "open":
        return ("ok", "open")
    if policy == "loopback" and loopback:
        return ("ok", "loopback")
    return {
        "none": (110, "missing"),
        "bad": (110, "unknown"),
        "revoked": (110, "revoked"),
        "other-scopes": (6, "scope"),
        "with-scope": ("ok", "key"),
    }[cred]


@pytest.mark.parametrize("cred", CREDENTIALS)
@pytest.mark.parametrize("peer", ["127.0.0.1", "10.1.2.3"])
@pytest.mark.parametrize("policy", model.POLICIES)
@pytest.mark.parametrize("scope", model.SCOPES)
def test_decision_table(scope, policy, peer, cred):
    state = state_for(scope, policy)
    want = expected(policy, peer == "127.0.0.1", cred)
    presented = KEYS.get(cred)
    if want[0] == "ok":
        grant = decide(state, scope, peer, presented)
        assert (grant.scope, grant.via) == (scope, want[1])
        assert grant.key_id == ("0000000c" if want[1] == "key" else None)
    elif want[0] == 110:
        with pytest.raises(AccessTokenInvalid) as exc:
            decide(state, scope, peer, presented)
        assert exc.value.reason == want[1]
        assert exc.value.easydl_code == 110 and exc.value.http_status == 401
        assert exc.value.key_id == ("0000000a" if cred == "revoked" else None)
    else:
        with pytest.raises(NoPermission) as exc:
            decide(state, scope, peer, presented)
        assert exc.value.scope == scope and exc.value.key_id == "0000000b"
        assert exc.value.easydl_code == 6 and exc.value.http_status == 403


def test_expired_key_is_refused_as_110():
    state = AccessState({"infer": "key"}, (record("0000000a", "vpk_e", ["infer"], expires_at="2020-01-01T00:00:00Z"),))
    with pytest.raises(AccessTokenInvalid) as exc:
        decide(state, "infer", "10.1.2.3", "vpk_e")
    assert exc.value.reason == "expired" and exc.value.key_id == "0000000a"


def test_overlong_credential_is_refused_unhashed(monkeypatch):
    state = AccessState({"infer": "key"}, (record("0000000a", "vpk_x", ["infer"]),))
    monkeypatch.setattr(model, "key_hash", lambda _k: pytest.fail("hashed an oversized credential"))
    with pytest.raises(AccessTokenInvalid) as exc:
        decide(state, "infer", "10.1.2.3", "v" * (model.MAX_KEY_CHARS + 1))
    assert exc.value.reason == "unknown"


def test_unknown_scope_fails_closed():
    with pytest.raises(AccessTokenInvalid):
        decide(AccessState(), "console", "127.0.0.1", None)


def test_client_facing_detail_never_names_the_reason():
    for cred in ("bad", "revoked"):
        with pytest.raises(AccessTokenInvalid) as exc:
            decide(state_for("infer", "key"), "infer", "10.1.2.3", KEYS[cred])
        assert exc.value.detail == "Access token invalid or no longer valid"
