"""install --device: parsed, normalised and validated into the release's config before anything is written,
and kept for later releases (upgrade reads state.json's ``device``)."""

from __future__ import annotations

import pytest

from visionpack.errors import ConfigInvalid
from visionpack.installer.cli import build_parser
from visionpack.installer.layout import Root
from visionpack.installer.release import service_config
from visionpack.installer.source import Source


def entry_and_paths(tmp_path):
    pkg = tmp_path / "package"
    pkg.mkdir()
    (pkg / "catalog.yml").write_text("deploys:\n  shop:\n    service: classification\n    port: 8701\n    models: {}\n")
    root = Root(tmp_path / "root")
    return root, root.deploy("shop"), Source(tmp_path).entry("shop")


def config_for(tmp_path, device):
    root, paths, entry = entry_and_paths(tmp_path)
    return service_config(root, paths, entry, paths.release("1"), host="127.0.0.1", port=1, workers=1, device=device)


def test_the_option_defaults_to_the_cpu():
    assert build_parser().parse_args(["install", "shop"]).device == "cpu"
    assert build_parser().parse_args(["install", "shop", "--device", "gpu:1"]).device == "gpu:1"


@pytest.mark.parametrize(
    ("given", "stored"), [("cpu", "cpu"), ("gpu:1", "gpu:1"), ("gpu", "gpu:0"), ("GPU:2", "gpu:2")]
)
def test_the_release_config_gets_the_normalised_device(tmp_path, given, stored):
    assert config_for(tmp_path, given).device == stored


@pytest.mark.parametrize("bad", ["cuda", "gpu:one", "gpu:-1", "tpu:0"])
def test_a_bad_device_is_refused_before_anything_is_written(tmp_path, bad):
    with pytest.raises(ConfigInvalid, match="device must be 'cpu' or 'gpu:N'"):
        config_for(tmp_path, bad)
    assert not (tmp_path / "root").exists()
