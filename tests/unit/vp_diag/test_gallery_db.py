"""trouble_shooting's gallery-database checks: reachable, schema version, sync lag (the database side
against a real PostgreSQL: tests/integration/gallery/test_postgres_store.py)."""

from __future__ import annotations

import sys

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import gallery_db  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402

REACHABLE = {"store": "postgresql", "database": "db1:5432/g", "reachable": True, "schema": 2, "compat": 1, "reads": 2}


def ctx_and_deploy(tmp_path):
    ctx = Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    return ctx, Deploy(root=tmp_path, name="face", state={"release": "1.0.0", "service": "face", "port": 1})


def test_a_reachable_database_at_this_releases_schema_passes(tmp_path):
    ctx, d = ctx_and_deploy(tmp_path)
    r = gallery_db.database_check(ctx, d, {**REACHABLE, "faces": 7})
    assert (r.status, r.detail) == ("PASS", "db1:5432/g reachable, schema 2, 7 face(s)")


def test_unreachable_older_and_newer_schemas(tmp_path):
    ctx, d = ctx_and_deploy(tmp_path)
    down = gallery_db.database_check(ctx, d, {"database": "db1:5432/g", "reachable": False, "error": "refused"})
    assert down.status == "FAIL" and "not reachable: refused" in down.detail and "pg_isready" in down.fix[0]
    older = gallery_db.database_check(ctx, d, {**REACHABLE, "schema": 1})
    assert older.status == "WARN" and "migrates it to 2" in older.detail
    newer = gallery_db.database_check(ctx, d, {**REACHABLE, "schema": 4, "compat": 3})
    assert newer.status == "FAIL" and "reading schema 3" in newer.detail and "upgrade" in newer.fix[0]


def test_sync_lag_as_the_service_reports_it(tmp_path):
    _, d = ctx_and_deploy(tmp_path)
    ok = gallery_db.sync_check(d, {"gallery": {"store": "postgresql", "listening": True, "synced_s_ago": 0.2}})
    assert ok is not None and ok.status == "PASS"
    slow = gallery_db.sync_check(d, {"gallery": {"store": "postgresql", "listening": True, "synced_s_ago": 30}})
    assert slow is not None and slow.status == "WARN"
    lost = gallery_db.sync_check(
        d, {"gallery": {"store": "postgresql", "listening": False, "synced_s_ago": 12.5, "error": "OperationalError"}}
    )
    assert lost is not None and lost.status == "FAIL" and "12.5 s ago" in lost.detail
    assert gallery_db.sync_check(d, {"ready": True}) is None  # no ops detail: nothing to say
    assert gallery_db.sync_check(d, {"gallery": {"store": "sqlite"}}) is None


def test_sqlite_deploys_get_no_line_and_a_broken_runtime_says_so(tmp_path, monkeypatch):
    ctx, d = ctx_and_deploy(tmp_path)
    (tmp_path / "face" / "releases" / "1.0.0").mkdir(parents=True)
    monkeypatch.setattr(type(d), "runtime", property(lambda self: tmp_path / "venv"))
    ctx.deploys = [d]
    monkeypatch.setattr(gallery_db.venv_exec, "run", lambda *a, **k: ({"store": "sqlite"}, ""))
    assert list(gallery_db.checks(ctx)) == []
    monkeypatch.setattr(gallery_db.venv_exec, "run", lambda *a, **k: (None, "exited with status 1: boom"))
    [r] = gallery_db.checks(ctx)
    assert r.status == "FAIL" and "boom" in r.detail
    monkeypatch.setattr(gallery_db.venv_exec, "run", lambda *a, **k: (REACHABLE, ""))
    monkeypatch.setattr(gallery_db, "ready_detail", lambda d: {"gallery": {"listening": True, "synced_s_ago": 0.1}})
    assert [r.status for r in gallery_db.checks(ctx)] == ["PASS", "PASS"]


def test_a_release_config_that_does_not_load_is_a_warning_not_a_database_failure(tmp_path, monkeypatch):
    ctx, d = ctx_and_deploy(tmp_path)
    (tmp_path / "face" / "releases" / "1.0.0").mkdir(parents=True)
    monkeypatch.setattr(type(d), "runtime", property(lambda self: tmp_path / "venv"))
    ctx.deploys = [d]
    broken = {"config_error": "ConfigInvalid: unknown key 'secret_token'"}
    monkeypatch.setattr(gallery_db.venv_exec, "run", lambda *a, **k: (broken, ""))
    [r] = gallery_db.checks(ctx)
    assert r.status == "WARN" and r.name == "gallery-database"
    assert "config.yml does not load (ConfigInvalid: unknown key 'secret_token')" in r.detail
