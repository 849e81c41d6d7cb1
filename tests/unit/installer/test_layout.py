"""Where everything lives under the install root."""

from __future__ import annotations

from pathlib import Path

from visionpack.installer import layout


def test_root_precedence_flag_then_env_then_default(tmp_path):
    assert layout.resolve_root("/x/y", {"VISIONPACK_ROOT": "/env"}) == Path("/x/y")
    assert layout.resolve_root(None, {"VISIONPACK_ROOT": "/env"}) == Path("/env")
    assert layout.resolve_root(None, {}) == Path("/opt/visionpack")


def test_relative_root_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert layout.resolve_root("r", {}) == tmp_path / "r"


def test_deploy_paths():
    root = layout.Root(Path("/R"))
    d = root.deploy("demo")
    assert root.venv("abc") == Path("/R/.runtime/abc")
    assert root.venv_log == Path("/R/.runtime/install.log")
    assert root.licenses == Path("/R/licenses")
    assert d.release("1.0.0") == Path("/R/demo/releases/1.0.0")
    assert (d.current, d.data, d.logs, d.run) == (
        Path("/R/demo/current"),
        Path("/R/demo/data"),
        Path("/R/demo/logs"),
        Path("/R/demo/run"),
    )
    assert (d.state, d.lock, d.pidfile) == (
        Path("/R/demo/state.json"),
        Path("/R/demo/.lock"),
        Path("/R/demo/run/gunicorn.pid"),
    )
    assert d.error_log == Path("/R/demo/logs/error.log") and d.proc_name == "visionpack:demo"
    files = layout.release_files(d.release("1.0.0"))
    assert files["start_script"] == Path("/R/demo/releases/1.0.0/start/start-1.sh")
    assert files["gunicorn_conf"] == Path("/R/demo/releases/1.0.0/start/gunicorn_conf.py")


def test_deploy_names_are_dirs_with_a_journal(tmp_path):
    root = layout.Root(tmp_path)
    for name in ("b", "a", ".runtime", "licenses", "kept-data-only"):
        (tmp_path / name).mkdir()
    for name in ("a", "b", ".runtime", "licenses"):
        (tmp_path / name / "state.json").write_text("{}")
    assert root.deploy_names() == ["a", "b"]
    assert layout.Root(tmp_path / "missing").deploy_names() == []
