"""Config: defaults in code, one YAML file, VISIONPACK_* overrides, validated once."""

from __future__ import annotations

import os

import pytest

from visionpack import config
from visionpack.errors import ConfigInvalid


def test_defaults_are_valid():
    cfg = config.load(env={})
    assert cfg.service == "classification" and cfg.max_inflight >= 1


def test_file_then_environment(tmp_path):
    f = tmp_path / "config.yml"
    f.write_text("deploy: shop-cls\nport: 9000\nmodels: {classifier: /m}\noptions: {det_threshold: 0.4}\n")
    cfg = config.load(env={"VISIONPACK_CONFIG": str(f), "VISIONPACK_PORT": "9100", "VISIONPACK_ONEDNN": "off"})
    assert (cfg.deploy, cfg.port, cfg.onednn) == ("shop-cls", 9100, False)
    assert cfg.models == {"classifier": "/m"} and cfg.options == {"det_threshold": 0.4}


def test_round_trip_through_dump(tmp_path):
    cfg = config.from_mapping({"deploy": "a", "models": {"classifier": "/x"}, "workers": 2})
    f = tmp_path / "c.yml"
    f.write_text(config.dump(cfg))
    assert config.load(f, env={}) == cfg


@pytest.mark.parametrize(
    "data",
    [
        {"port": 0},
        {"port": "eighty"},
        {"workers": 0},
        {"service": "ocr"},
        {"deploy": "a/b"},
        {"device": "tpu"},
        {"models": ["x"]},
        {"options": [1]},
        {"visualize": "maybe"},
        {"unknown_key": 1},
        {"threads_per_worker": -1},
        {"workers": True},
        {"max_batch": 0},
    ],
)
def test_invalid_values_are_named(data):
    with pytest.raises(ConfigInvalid):
        config.from_mapping(data)


def test_unreadable_or_non_mapping_file(tmp_path):
    bad = tmp_path / "c.yml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigInvalid):
        config.load(bad, env={})
    with pytest.raises(ConfigInvalid):
        config.load(tmp_path / "missing.yml", env={})


def test_threads_never_oversubscribe_cores():
    cfg = config.from_mapping({"workers": 2})
    assert cfg.effective_threads(cores=2) == 1
    assert config.from_mapping({"workers": 1}).effective_threads(cores=2) == 2
    assert config.from_mapping({"workers": 4}).effective_threads(cores=2) == 1


@pytest.mark.parametrize(
    "key,value",
    [
        ("header_timeout", 0),
        ("body_timeout", -1),
        ("request_timeout", 0),
        ("keepalive_timeout", 0),
        ("max_connections", 0),
        ("max_header_bytes", 512),
        ("max_drain_bytes", -1),
        ("log_max_bytes", 0),
        ("log_backups", -1),
        ("max_buffered_bytes", 0),
    ],
)
def test_http_front_and_log_limits_are_validated(key, value):
    with pytest.raises(ConfigInvalid, match=key):
        config.from_mapping({key: value})


def test_http_front_limits_come_from_the_environment_too():
    cfg = config.load(env={"VISIONPACK_HEADER_TIMEOUT": "3", "VISIONPACK_MAX_CONNECTIONS": "50"})
    assert (cfg.header_timeout, cfg.max_connections) == (3, 50)
    assert cfg.max_body_bytes() == cfg.max_image_b64_bytes + config.ENVELOPE_SLACK


def test_malloc_tuning_is_a_key_the_environment_overrides_and_dump_leaves_out_at_its_default(tmp_path):
    assert config.load(env={}).malloc_tuning is True
    assert config.load(env={"VISIONPACK_MALLOC_TUNING": "0"}).malloc_tuning is False
    with pytest.raises(ConfigInvalid, match="malloc_tuning"):
        config.load(env={"VISIONPACK_MALLOC_TUNING": "sometimes"})
    assert "malloc_tuning" not in config.dump(config.from_mapping({}))  # an older installer reads the file
    off = config.from_mapping({"malloc_tuning": False})
    (tmp_path / "c.yml").write_text(config.dump(off))
    assert config.load(tmp_path / "c.yml", env={}).malloc_tuning is False


def test_config_path_comes_from_the_environment(monkeypatch):
    assert config.config_path({"VISIONPACK_CONFIG": "/r/config.yml"}) == "/r/config.yml"
    assert config.config_path({"VISIONPACK_CONFIG": ""}) is None
    monkeypatch.setenv("VISIONPACK_CONFIG", "/x.yml")
    assert config.config_path() == "/x.yml"


def test_the_inherited_slot_is_taken_once_and_validated(monkeypatch):
    monkeypatch.setenv(config.SLOT_FD_ENV, "7")
    assert config.take_inherited_slot_fd() == 7
    assert config.take_inherited_slot_fd() is None  # gone: forked workers never see it
    monkeypatch.setenv(config.SLOT_FD_ENV, "seven")
    with pytest.raises(ConfigInvalid, match="VISIONPACK_INHERIT_SLOT_FD must be a descriptor number"):
        config.take_inherited_slot_fd()


def test_standby_flag_round_trip(monkeypatch):
    monkeypatch.delenv(config.STANDBY_FLAG_ENV, raising=False)
    assert config.standby_flag() is None
    config.set_standby_flag("/run/serve-public")
    assert config.standby_flag() == "/run/serve-public"
    monkeypatch.delenv(config.STANDBY_FLAG_ENV)


def test_export_env_sets_or_keeps_an_operators_value(monkeypatch):
    monkeypatch.setenv("KMP_BLOCKTIME", "200")
    monkeypatch.delenv("GLOG_minloglevel", raising=False)
    config.export_env({"KMP_BLOCKTIME": "1", "GLOG_minloglevel": "2"}, keep_existing=True)
    assert (os.environ["KMP_BLOCKTIME"], os.environ["GLOG_minloglevel"]) == ("200", "2")  # noqa: SIM112  (glog's own spelling)
    config.export_env({"KMP_BLOCKTIME": "1"})
    assert os.environ["KMP_BLOCKTIME"] == "1"
