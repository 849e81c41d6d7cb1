"""Service options the vendor ships in catalog.yml reach the release's config.yml."""

from __future__ import annotations

from pathlib import Path

from visionpack.installer.layout import Root
from visionpack.installer.release import service_config
from visionpack.installer.source import Source


def test_catalog_options_reach_the_service_config(tmp_path):
    pkg = tmp_path / "package"
    pkg.mkdir()
    (pkg / "catalog.yml").write_text(
        "deploys:\n  shop-face:\n    service: face\n    port: 8703\n    models:\n      feature: f\n"
        "    options:\n      index_type: HNSW32\n      rec_threshold: 0.8\n"
    )
    entry = Source(tmp_path).entry("shop-face")
    assert entry.options == {"index_type": "HNSW32", "rec_threshold": 0.8}
    root = Root(tmp_path / "root")
    paths = root.deploy("shop-face")
    cfg = service_config(root, paths, entry, paths.release("1.0.0"), host="127.0.0.1", port=8703, workers=1)
    assert cfg.options == {"index_type": "HNSW32", "rec_threshold": 0.8}
    assert cfg.models == {"feature": str(Path(paths.release("1.0.0")) / "models" / "f")}


def test_entries_without_options_get_an_empty_mapping(tmp_path):
    pkg = tmp_path / "package"
    pkg.mkdir()
    (pkg / "catalog.yml").write_text("deploys:\n  a:\n    service: classification\n    port: 1\n    models: {}\n")
    assert Source(tmp_path).entry("a").options == {}
