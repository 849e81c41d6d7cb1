"""install's --gallery-* options: parsed into config.yml's ``gallery`` section, validated before anything
is written, and carried by every later release (upgrade reads them from state.json)."""

from __future__ import annotations

import pytest

from visionpack.config import GalleryConfig
from visionpack.errors import ConfigInvalid
from visionpack.installer.cli import _gallery_options, build_parser
from visionpack.installer.layout import Root
from visionpack.installer.release import service_config
from visionpack.installer.source import Source


def entry_and_paths(tmp_path):
    pkg = tmp_path / "package"
    pkg.mkdir()
    (pkg / "catalog.yml").write_text("deploys:\n  shop-face:\n    service: face\n    port: 8703\n    models: {}\n")
    root = Root(tmp_path / "root")
    return root, root.deploy("shop-face"), Source(tmp_path).entry("shop-face")


def test_the_options_become_the_gallery_section(tmp_path):
    args = build_parser().parse_args(
        ["install", "shop-face", "--gallery-store", "postgresql", "--gallery-dsn", "host=db1 dbname=g user=vp",
         "--gallery-password-file", "/etc/visionpack/gallery.pw"]
    )  # fmt: skip
    section = _gallery_options(args)
    assert section == {
        "store": "postgresql",
        "dsn": "host=db1 dbname=g user=vp",
        "password_file": "/etc/visionpack/gallery.pw",
    }
    root, paths, entry = entry_and_paths(tmp_path)
    cfg = service_config(root, paths, entry, paths.release("1"), host="127.0.0.1", port=1, workers=1, gallery=section)
    assert cfg.gallery == GalleryConfig("postgresql", "host=db1 dbname=g user=vp", "/etc/visionpack/gallery.pw")
    assert _gallery_options(build_parser().parse_args(["install", "shop-face"])) is None


def test_without_options_the_gallery_stays_sqlite(tmp_path):
    root, paths, entry = entry_and_paths(tmp_path)
    cfg = service_config(root, paths, entry, paths.release("1"), host="127.0.0.1", port=1, workers=1, gallery=None)
    assert cfg.gallery == GalleryConfig()


def test_a_bad_store_is_refused_before_anything_is_written(tmp_path):
    root, paths, entry = entry_and_paths(tmp_path)
    with pytest.raises(ConfigInvalid, match="gallery.store must be one of sqlite, postgresql"):
        service_config(root, paths, entry, paths.release("1"), host="h", port=1, workers=1, gallery={"store": "x"})
    assert not (tmp_path / "root").exists()
