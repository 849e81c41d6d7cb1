"""binding.py: install/start say the address the service really listens on, and warn when the
gallery can be changed by anyone on the network."""

from __future__ import annotations

import json

from visionpack.installer import binding


def test_wildcard_is_said_to_be_every_interface():
    text = binding.describe("0.0.0.0", 8703, "demo-face")
    assert text.startswith("listening on http://0.0.0.0:8703/ (every IPv4 interface")
    assert "http://127.0.0.1:8703/demo-face/" in text and "<this server's address>:8703" in text
    assert "IPv6 and IPv4" in binding.describe("::", 8703, "demo-face")
    assert "http://[::1]:8703/demo-face/" in binding.describe("::", 8703, "demo-face")


def test_loopback_and_one_interface():
    assert (
        binding.describe("127.0.0.1", 8701, "c")
        == "listening on http://127.0.0.1:8701/ (this machine only): http://127.0.0.1:8701/c/"
    )
    assert "(that interface only): http://10.1.2.3:8701/c/" in binding.describe("10.1.2.3", 8701, "c")
    assert binding.is_loopback("::1") and binding.is_loopback("127.9.9.9") and binding.is_loopback("localhost")
    assert not binding.is_loopback("0.0.0.0") and not binding.is_loopback("10.0.0.1")


def _policy(tmp_path, gallery: str):
    (tmp_path / "access.json").write_text(json.dumps({"schema": 1, "policies": {"gallery": gallery}, "keys": []}))


def test_warning_only_beyond_loopback_with_open_gallery_writes(tmp_path):
    _policy(tmp_path, "open")
    text = binding.warning("0.0.0.0", 8703, "face", tmp_path)
    assert text and "gallery writes are open to everyone" in text and "apikey policy" in text
    assert binding.warning("127.0.0.1", 8703, "face", tmp_path) is None  # this machine only
    assert binding.warning("0.0.0.0", 8701, "classification", tmp_path) is None  # no gallery
    _policy(tmp_path, "loopback")
    assert binding.warning("0.0.0.0", 8703, "face", tmp_path) is None
    (tmp_path / "access.json").unlink()
    assert binding.gallery_policy(tmp_path) == "loopback"  # the default (access/model.py)
    assert binding.warning("0.0.0.0", 8703, "face", tmp_path) is None
    (tmp_path / "access.json").write_text("{broken")
    assert binding.gallery_policy(tmp_path) is None  # status and the service say what is wrong


def test_announce_says_then_warns(tmp_path):
    _policy(tmp_path, "open")
    said, warned = [], []
    binding.announce(
        said.append,
        warned.append,
        deploy="demo-face",
        service="face",
        host="0.0.0.0",
        port=8703,
        data_dir=tmp_path,
        pid=42,
    )
    assert said == [f"demo-face is ready (pid 42), {binding.describe('0.0.0.0', 8703, 'demo-face')}"]
    assert len(warned) == 1 and "0.0.0.0:8703 is reachable from the network" in warned[0]
