"""install.py apikey create|list|revoke|policy and status's access line, through cli.main.

A deploy here is only its journal (state.json): the commands touch nothing else. The same
commands against a really installed, running deploy are tests/integration/test_access_gunicorn.py.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from visionpack.access import store
from visionpack.installer import cli

DEPLOY = "d1"


@pytest.fixture
def root(tmp_path):
    (tmp_path / DEPLOY).mkdir()
    (tmp_path / DEPLOY / "state.json").write_text(
        json.dumps({"schema": 1, "service": "classification", "release": "1.0.0"})
    )
    return tmp_path


def run(root, capsys, *argv):
    rc = cli.main(["--root", str(root), *argv], package_dir=root, env={})
    out, err = capsys.readouterr()
    return rc, out, err


def test_create_prints_the_key_once_and_stores_its_hash(root, capsys):
    rc, out, err = run(root, capsys, "apikey", "create", DEPLOY, "--name", "crm", "--scope", "infer,gallery")
    assert rc == 0
    key = out.splitlines()[1]
    assert key.startswith("vpk_") and "shown only this once" in out
    assert "infer is open" in err  # the key is not needed for infer until the policy changes
    raw = (root / DEPLOY / "data" / "access.json").read_text()
    assert key not in raw
    assert stat.S_IMODE(os.stat(root / DEPLOY / "data" / "access.json").st_mode) == 0o640
    state = store.load(root / DEPLOY / "data")
    assert state.match(key).scopes == ("infer", "gallery") and state.match(key).name == "crm"


def test_create_json_has_the_key_field(root, capsys):
    rc, out, _ = run(root, capsys, "apikey", "create", DEPLOY, "--scope", "ops", "--scope", "gallery", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["key"].startswith("vpk_") and doc["scopes"] == ["ops", "gallery"]
    assert set(doc) >= {"id", "name", "scopes", "key", "deploy", "created_at"}
    assert store.load(root / DEPLOY / "data").match(doc["key"]).id == doc["id"]


def test_default_scope_is_infer(root, capsys):
    doc = json.loads(run(root, capsys, "apikey", "create", DEPLOY, "--json")[1])
    assert doc["scopes"] == ["infer"]


def test_list_never_shows_keys_or_hashes(root, capsys):
    key = json.loads(run(root, capsys, "apikey", "create", DEPLOY, "--json")[1])["key"]
    rc, out, _ = run(root, capsys, "apikey", "list", DEPLOY, "--json")
    doc = json.loads(out)
    assert rc == 0 and len(doc["keys"]) == 1 and doc["policies"]["gallery"] == "loopback"
    assert key not in out and "sha256" not in out
    rc, out, _ = run(root, capsys, "apikey", "list", DEPLOY)
    assert "active" in out and key not in out and "policies infer open, gallery loopback, ops loopback" in out


def test_list_without_keys(root, capsys):
    rc, out, _ = run(root, capsys, "apikey", "list", DEPLOY)
    assert rc == 0 and "no API keys" in out


def test_revoke_then_list_shows_revoked(root, capsys):
    kid = json.loads(run(root, capsys, "apikey", "create", DEPLOY, "--json")[1])["id"]
    rc, out, _ = run(root, capsys, "apikey", "revoke", DEPLOY, kid)
    assert rc == 0 and f"revoked key {kid}" in out
    rc, out, _ = run(root, capsys, "apikey", "revoke", DEPLOY, kid)
    assert rc == 0 and "already revoked" in out
    doc = json.loads(run(root, capsys, "apikey", "list", DEPLOY, "--json")[1])
    assert doc["keys"][0]["revoked"] is True and doc["keys"][0]["active"] is False


def test_policy_sets_and_warns_when_no_key_holds_the_scope(root, capsys):
    rc, out, err = run(root, capsys, "apikey", "policy", DEPLOY, "--scope", "ops", "--policy", "key")
    assert rc == 0 and "ops is now key (was loopback)" in out
    assert "no active key holds the ops scope" in err
    assert store.load(root / DEPLOY / "data").policies["ops"] == "key"
    doc = json.loads(run(root, capsys, "apikey", "policy", DEPLOY, "--scope", "ops", "--policy", "open", "--json")[1])
    assert doc["previous"] == "key" and doc["policies"]["ops"] == "open"


def test_status_shows_the_policies(root, capsys):
    run(root, capsys, "apikey", "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    run(root, capsys, "apikey", "create", DEPLOY)
    rc, out, _ = run(root, capsys, "status", DEPLOY)
    assert rc == 0 and "access: infer key, gallery loopback, ops loopback; 1 active API key(s)" in out
    doc = json.loads(run(root, capsys, "status", DEPLOY, "--json")[1])
    assert doc["deploys"][0]["access"] == {
        "policies": {"infer": "key", "gallery": "loopback", "ops": "loopback"},
        "active_keys": 1,
    }


def test_status_survives_a_broken_access_file(root, capsys):
    (root / DEPLOY / "data").mkdir()
    (root / DEPLOY / "data" / "access.json").write_text("{")
    rc, out, _ = run(root, capsys, "status", DEPLOY)
    assert rc == 0 and "access: " in out and "not a valid access file" in out


@pytest.mark.parametrize(
    "argv, code, text",
    [
        (["apikey"], 2, "required: ACTION"),
        (["apikey", "create"], 2, "required: DEPLOY"),
        (["apikey", "create", DEPLOY, "--scope", "admin"], 2, "unknown scope 'admin'"),
        (["apikey", "create", DEPLOY, "--name", "x" * 80], 2, "at most 64 printable"),
        (["apikey", "revoke", DEPLOY], 2, "required: KEY_ID"),
        (["apikey", "revoke", DEPLOY, "0badc0de"], 2, "no API key with id '0badc0de'"),
        (["apikey", "policy", DEPLOY, "--scope", "infer"], 2, "required: --policy"),
        (["apikey", "policy", DEPLOY, "--scope", "infer", "--policy", "closed"], 2, "invalid choice"),
        (["apikey", "policy", DEPLOY, "--scope", "admin", "--policy", "key"], 2, "invalid choice"),
        (["apikey", "list", "nope"], 14, "'nope' is not installed"),
        (["apikey", "create", "nope"], 14, "'nope' is not installed"),
    ],
)
def test_usage_errors_and_exit_codes(root, capsys, argv, code, text):
    rc, _, err = run(root, capsys, *argv)
    assert rc == code and text in err


def test_json_errors_are_one_document(root, capsys):
    rc, out, _ = run(root, capsys, "apikey", "revoke", DEPLOY, "0badc0de", "--json")
    assert rc == 2 and json.loads(out)["error"]["slug"] == "usage"


def test_broken_access_file_is_config_invalid(root, capsys):
    (root / DEPLOY / "data").mkdir()
    (root / DEPLOY / "data" / "access.json").write_text('{"schema": 7}')
    rc, _, err = run(root, capsys, "apikey", "create", DEPLOY)
    assert rc == 19 and "not a valid access file" in err
    assert (root / DEPLOY / "data" / "access.json").read_text() == '{"schema": 7}'
