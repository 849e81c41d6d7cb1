"""start/gunicorn_conf.py and start/start-N.sh.in, the two files rendered into every release (the
rendered script run by bash: tests/integration/installer/test_templates.py)."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

from visionpack import config

REPO = Path(__file__).resolve().parents[3]


def test_gunicorn_conf_takes_everything_from_config(tmp_path, monkeypatch):
    cfg = config.from_mapping(
        {
            "deploy": "demo",
            "host": "127.0.0.1",
            "port": 9123,
            "workers": 2,
            "threads_per_worker": 3,
            "max_inflight": 4,
            "timeout": 70,
            "graceful_timeout": 9,
            "run_dir": str(tmp_path / "run"),
            "log_dir": str(tmp_path / "logs"),
        }
    )
    path = tmp_path / "config.yml"
    path.write_text(config.dump(cfg))
    monkeypatch.setenv("VISIONPACK_CONFIG", str(path))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, "99")
    before = os.umask(0o022)
    try:
        ns = runpy.run_path(str(REPO / "start" / "gunicorn_conf.py"))
        # Set in the master as the file is read, before gunicorn opens its log files.
        assert os.umask(0o022) == 0o027 == ns["umask"]
    finally:
        os.umask(before)
    assert ns["bind"] == ["127.0.0.1:9123"]
    assert (ns["workers"], ns["worker_class"], ns["threads"]) == (2, "visionpack.api.front.FrontWorker", 6)
    assert (ns["keepalive"], ns["worker_connections"]) == (cfg.keepalive_timeout, cfg.max_connections)
    assert ns["capture_output"] is False  # logs are ours, rotated (visionpack.logs)
    assert (ns["timeout"], ns["graceful_timeout"], ns["preload_app"]) == (70, 9, False)
    assert ns["pidfile"] == str(tmp_path / "run" / "gunicorn.pid")
    assert ns["errorlog"] == str(tmp_path / "logs" / "error.log")
    assert ns["accesslog"] == str(tmp_path / "logs" / "access.log")
    assert ns["proc_name"] == "visionpack:demo"
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "3"
    assert ns["reuse_port"] is False  # one listening socket, handed over at upgrades (docs/releases.md)
    # The hooks only do bookkeeping (handover socket, standby gate); none may load a model.
    assert "pre_fork" not in ns and "post_worker_init" in ns and "when_ready" in ns
    for hook in ("when_ready", "post_fork", "post_worker_init"):
        assert "paddle" not in ns[hook].__code__.co_names
    assert "paddle" not in ns["on_starting"].__code__.co_names
    assert "import paddle" not in (REPO / "start" / "gunicorn_conf.py").read_text()


def test_on_starting_refuses_without_a_license_and_skips_without_a_license_dir(tmp_path, monkeypatch):
    import logging

    import pytest

    server = type("Server", (), {"log": logging.getLogger("test")})()
    base = {"deploy": "demo", "run_dir": str(tmp_path / "run"), "log_dir": str(tmp_path / "logs")}
    path = tmp_path / "config.yml"
    path.write_text(config.dump(config.from_mapping(base)))
    monkeypatch.setenv("VISIONPACK_CONFIG", str(path))
    assert runpy.run_path(str(REPO / "start" / "gunicorn_conf.py"))["on_starting"](server) is None
    path.write_text(config.dump(config.from_mapping({**base, "license_dir": str(tmp_path / "licenses")})))
    with pytest.raises(RuntimeError, match=r"license refused \(missing\)"):
        runpy.run_path(str(REPO / "start" / "gunicorn_conf.py"))["on_starting"](server)


def test_gunicorn_conf_brackets_ipv6(tmp_path, monkeypatch):
    path = tmp_path / "config.yml"
    path.write_text(
        config.dump(config.from_mapping({"host": "::", "port": 80, "run_dir": str(tmp_path), "log_dir": str(tmp_path)}))
    )
    monkeypatch.setenv("VISIONPACK_CONFIG", str(path))
    assert runpy.run_path(str(REPO / "start" / "gunicorn_conf.py"))["bind"] == ["[::]:80"]
