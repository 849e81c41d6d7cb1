"""Package tree reading, release rendering, model checksums, licenses, config validation."""

from __future__ import annotations

import json

import pytest

from visionpack.errors import ConfigInvalid, ModelInvalid, PackageCorrupt, UnknownDeploy
from visionpack.fsutil import sha256_file
from visionpack.installer import release
from visionpack.installer.layout import Root
from visionpack.installer.source import Source


@pytest.fixture
def src(tmp_path):
    top = tmp_path / "pkg"
    (top / "package").mkdir(parents=True)
    (top / "package" / "VERSION").write_text("2.1.0\n")
    (top / "package" / "catalog.yml").write_text(
        "deploys:\n  demo:\n    service: classification\n    port: 8701\n    description: d\n"
        "    models:\n      classifier: b\n"
    )
    (top / "original").mkdir()
    # the lock of the Python running the tests (requirements.lock on 3.11; -cp39.lock when the unit
    # tier runs under 3.9, as it was checked for issue 18)
    Source(top).lock_file.write_text("flask==3 --hash=sha256:00\n")
    b = top / "models" / "b"
    b.mkdir(parents=True)
    for name in ("inference.json", "inference.pdiparams", "inference.yml"):
        (b / name).write_text(name)
    return Source(top)


def test_version_catalog_and_lock_key(src):
    assert src.version() == "2.1.0"
    entry = src.entry("demo")
    assert (entry.service, entry.port, entry.models) == ("classification", 8701, {"classifier": "b"})
    key = src.lock_key()
    assert len(key) == 16
    src.lock_file.write_text("flask==4 --hash=sha256:11\n")
    assert src.lock_key() != key


def test_unknown_deploy_names_what_is_offered(src):
    with pytest.raises(UnknownDeploy, match="offers: demo"):
        src.entry("nope")


@pytest.mark.parametrize("text", ["", "../evil", ".hidden"])
def test_bad_version_file(src, text):
    src.version_file.write_text(text)
    with pytest.raises(PackageCorrupt):
        src.version()


def test_bad_catalog(src):
    src.catalog_file.write_text("deploys:\n  demo:\n    service: classification\n")
    with pytest.raises(PackageCorrupt, match="incomplete"):
        src.catalog()
    src.catalog_file.write_text("deploys: [\n")
    with pytest.raises(PackageCorrupt, match="not valid YAML"):
        src.catalog()


def test_missing_lock(src):
    src.lock_file.unlink()
    with pytest.raises(PackageCorrupt, match="download.sh"):
        src.lock_key()


def test_service_config_validates_options(src, tmp_path):
    root = Root(tmp_path / "r")
    paths = root.deploy("demo")
    cfg = release.service_config(
        root, paths, src.entry("demo"), paths.release("2.1.0"), host="127.0.0.1", port=9000, workers=2
    )
    assert cfg.models == {"classifier": str(paths.release("2.1.0") / "models" / "b")}
    # run_dir is per release: two releases run side by side during an upgrade.
    assert (cfg.run_dir, cfg.license_dir) == (str(paths.run / "2.1.0"), str(root.licenses))
    with pytest.raises(ConfigInvalid, match="port"):
        release.service_config(
            root, paths, src.entry("demo"), paths.release("2.1.0"), host="127.0.0.1", port=70000, workers=1
        )


def test_bundle_copy_checks_manifest(src, tmp_path):
    b = src.models / "b"
    sums = {n: sha256_file(b / n) for n in ("inference.json", "inference.pdiparams")}
    (b / "manifest.json").write_text(json.dumps({"schema": 1, "files": sums}))
    copied = release._copy_bundle(src, "b", tmp_path / "ok")
    assert copied["inference.json"] == sums["inference.json"] and "manifest.json" in copied
    (b / "inference.pdiparams").write_text("tampered")
    with pytest.raises(ModelInvalid, match="inference.pdiparams does not match"):
        release._copy_bundle(src, "b", tmp_path / "bad")


def test_render_refuses_unknown_placeholders():
    assert release.render("a @@X@@ b", {"X": "1"}) == "a 1 b"
    with pytest.raises(PackageCorrupt):
        release.render("@@Y@@", {"X": "1"})


def test_licenses_copy_keys_but_never_overwrite_a_license(src, tmp_path):
    lic = src.top / "licenses"
    lic.mkdir()
    (lic / "vendor.pub").write_text("key")
    (lic / "license.lic").write_text("from package")
    root = Root(tmp_path / "r")
    assert release.copy_licenses(root, src) == ["vendor.pub", "license.lic"]
    (root.licenses / "license.lic").write_text("updated by lu")
    assert release.copy_licenses(root, src) == ["vendor.pub"]
    assert (root.licenses / "license.lic").read_text() == "updated by lu"
