"""Console test vocabulary: the deploy name, peers, and a classification config on fakes."""

from __future__ import annotations

from pathlib import Path

from tests.unit.fakes import write_cls_bundle
from visionpack.config import ServiceConfig

DEPLOY = "demo-classify"
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


def cls_config(tmp_path: Path, **extra) -> ServiceConfig:
    values = {
        "deploy": DEPLOY,
        "models": {"classifier": str(write_cls_bundle(tmp_path))},
        "run_dir": str(tmp_path / "run"),
        "data_dir": str(tmp_path / "data"),
        "release": "1.0.0",
        **extra,
    }
    return ServiceConfig(**values)
