"""The gallery store seam: the face service and the Gallery on any ``GalleryStore`` (an in-memory one
here), the one factory that turns ``gallery.store`` into a store, and how config.yml names it."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.face_fakes import GREEN, RED, b64, face_config, factory, picture
from tests.unit.gallery.memory_store import MemoryStore
from visionpack import config
from visionpack.api.app import create_app
from visionpack.config import GalleryConfig
from visionpack.errors import ConfigInvalid, InvalidArgument
from visionpack.gallery import DEFAULT_INDEX, Gallery, GalleryStore, IndexParams, NewFace, cli, open_store
from visionpack.gallery.pg_conninfo import parse_dsn
from visionpack.gallery.postgres_store import PostgresStore
from visionpack.gallery.sqlite_store import SqliteStore, db_path
from visionpack.gallery.store_factory import STORES
from visionpack.services.face import FaceService

DEPLOY = "demo-face"


def protocol_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(GalleryStore).items()
        if inspect.isfunction(fn) and not name.startswith("_")
    }


@pytest.mark.parametrize("impl", [SqliteStore, PostgresStore, MemoryStore])
def test_stores_implement_every_protocol_method_with_its_signature(impl):
    methods = protocol_methods()
    assert {"add", "changes", "drop_index", "export", "import_file", "generation"} <= set(methods)
    for name, sig in methods.items():
        assert inspect.signature(getattr(impl, name)) == sig, name


def service_on(tmp_path, store, **options):
    cfg = face_config(tmp_path, options={"rec_threshold": 0.9, **options})
    svc = FaceService(cfg, factory(), store=store)
    svc.warmup()
    return cfg, svc, create_app(cfg, service=svc, gate=None).test_client()


def call(client, path, body):
    r = client.post(path, data=json.dumps(body), content_type="application/json")
    return r.status_code, r.get_json()


def test_the_face_service_runs_on_an_in_memory_store(tmp_path):
    store = MemoryStore()
    cfg, _, client = service_on(tmp_path, store)

    def pair(colour, label):
        return {"image": b64(picture(colour)), "label": label}

    _, body = call(client, "/face-recognition-index-build", {"imageLabelPairs": [pair(RED, "r"), pair(GREEN, "g")]})
    key = body["result"]["indexKey"]
    assert body["result"]["idMap"] == {"0": "r", "1": "g"}
    _, body = call(client, "/face-recognition-index-add", {"imageLabelPairs": [pair(GREEN, "g")], "indexKey": key})
    assert body["result"]["idMap"] == {"0": "r", "1": "g", "2": "g"}
    _, body = call(client, "/face-recognition-infer", {"image": b64(picture(GREEN)), "indexKey": key})
    assert [h["label"] for h in body["result"]["faces"][0]["recResults"]] == ["g"]
    _, body = call(client, "/face-recognition-index-remove", {"ids": [0], "indexKey": key})
    assert body["result"]["idMap"] == {"1": "g", "2": "g"}
    # EasyDL's remove by user and list go through the Gallery to the store, never around it.
    _, body = call(client, f"/{DEPLOY}/FaceGallery/list", {"group_id": key})
    assert body["result"]["face_num"] == 2 and set(body["result"]["group_id_list"]) == {DEFAULT_INDEX, key}
    _, body = call(client, f"/{DEPLOY}/FaceGallery/remove", {"group_id": key, "user_id": "g"})
    assert body["result"] == {"group_id": key, "removed": [1, 2], "face_num": 0}
    assert {"list_faces", "remove_label"} <= set(store.calls)
    status, body = call(client, "/face-recognition-index-delete", {"indexKey": key})
    assert status == 200 and body["result"] == {"indexKey": key, "removedFaces": 0}
    status, body = call(client, "/face-recognition-infer", {"image": b64(picture(RED)), "indexKey": key})
    assert status == 422 and "unknown indexKey" in body["errorMsg"]
    assert store.index_keys() == [DEFAULT_INDEX]
    # Nothing of SQLite's: no database file, no gallery directory in data_dir.
    assert not (Path(cfg.data_dir) / "face").exists()


def test_two_workers_on_one_store_follow_each_other(tmp_path):
    store = MemoryStore()
    _, a, client_a = service_on(tmp_path / "a", store)
    _, b, client_b = service_on(tmp_path / "b", store)
    call(client_a, f"/{DEPLOY}/FaceGallery/add", {"image": b64(picture(RED)), "user_id": "alice"})
    _, body = call(client_b, f"/{DEPLOY}/FaceRecognition", {"image": b64(picture(RED))})
    assert [u["user_id"] for u in body["result"]["face_list"][0]["user_list"]] == ["alice"]
    call(client_b, f"/{DEPLOY}/FaceGallery/remove", {"face_ids": [0]})
    _, body = call(client_a, f"/{DEPLOY}/FaceRecognition", {"image": b64(picture(RED))})
    assert body["result"]["face_list"][0]["user_list"] == []
    assert a.gallery.fresh(DEFAULT_INDEX).gen == b.gallery.fresh(DEFAULT_INDEX).gen == store.generation(DEFAULT_INDEX)


def test_the_gallery_on_a_store_reembeds_drops_and_caps(tmp_path):
    store = MemoryStore()
    old = Gallery.over(store, IndexParams(), "old", 2)
    old.add(
        DEFAULT_INDEX,
        [NewFace("a", np.array([1, 0], np.float32), b"A"), NewFace("b", np.array([0, 1], np.float32), b"B")],
    )
    g = Gallery.over(store, IndexParams("HNSW32"), "new", 3, max_keys=2)
    assert g.stale_count() == 2 and len(g.fresh(DEFAULT_INDEX)) == 0  # another model's vectors are left out
    assert g.migrate(lambda crops: np.eye(3, dtype=np.float32)[[int(c == b"B") for c in crops]]) == 2
    assert g.search(DEFAULT_INDEX, np.eye(3, dtype=np.float32)[1:2], 1)[0][0].label == "b"
    g.build([], key="team")
    with pytest.raises(InvalidArgument, match="max_index_keys"):
        g.ensure("third")
    assert g.delete(DEFAULT_INDEX) == 2 and g.id_map(DEFAULT_INDEX) == {}
    assert g.delete("team") == 0 and g.keys() == [DEFAULT_INDEX]


# --- the factory ----------------------------------------------------------------------------


def test_the_factory_opens_sqlite_in_the_data_dir_by_default(tmp_path):
    store = open_store(GalleryConfig(), tmp_path)
    assert isinstance(store, SqliteStore) and store.path == db_path(tmp_path)
    assert store.index_keys() == []
    assert set(STORES) == set(config.GALLERY_STORES)  # what config.yml accepts is what the factory opens


@pytest.mark.parametrize(
    "settings",
    [GalleryConfig("mysql", "mysql://vp@db/gallery"), GalleryConfig(""), GalleryConfig(["sqlite"])],
)  # type: ignore[arg-type]
def test_the_factory_refuses_a_store_kind_it_does_not_have(tmp_path, settings):
    with pytest.raises(ConfigInvalid, match="gallery.store must be one of sqlite, postgresql") as err:
        open_store(settings, tmp_path)
    assert err.value.exit_code == 19 and not list(tmp_path.iterdir())  # nothing created


def test_sqlite_takes_no_dsn(tmp_path):
    with pytest.raises(ConfigInvalid, match="takes none"):
        open_store(GalleryConfig("sqlite", "postgresql://vp@db/gallery"), tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_face_service_opens_the_store_its_config_names(tmp_path):
    cfg = face_config(tmp_path)
    svc = FaceService(cfg, factory())
    assert isinstance(svc.gallery.store, SqliteStore) and svc.gallery.store.path == db_path(cfg.data_dir)
    with pytest.raises(ConfigInvalid, match="got 'mysql'"):
        FaceService(dataclasses.replace(cfg, gallery=GalleryConfig("mysql")), factory())
    with pytest.raises(ConfigInvalid, match="postgresql needs gallery.dsn"):
        FaceService(dataclasses.replace(cfg, gallery=GalleryConfig("postgresql")), factory())


# --- config.yml's gallery section --------------------------------------------------------------


def test_config_names_the_store_sqlite_by_default_and_round_trips(tmp_path):
    assert config.from_mapping({}).gallery == GalleryConfig("sqlite", "")
    cfg = config.from_mapping({"gallery": {"store": "sqlite"}})
    f = tmp_path / "c.yml"
    f.write_text(config.dump(cfg))
    assert config.load(f, env={}).gallery == GalleryConfig("sqlite", "")
    # Nested like models and options: only the file sets it.
    assert config.load(f, env={"VISIONPACK_GALLERY": "postgresql"}).gallery == GalleryConfig()


@pytest.mark.parametrize(
    "gallery,message",
    [
        ({"store": "mysql", "dsn": "mysql://vp:s3cret@db/g"}, "gallery.store must be one of sqlite, postgresql"),
        ({"store": None}, "gallery.store must be one of sqlite"),
        ({"store": "postgresql", "password_file": ["s3cret"]}, "gallery.password_file must be a path"),
        ({"store": "sqlite", "path": "/x"}, "unknown key(s) path in 'gallery'"),
        ({"dsn": 5}, "gallery.dsn must be a string"),
        ("postgresql://vp:s3cret@db/g", "'gallery' must be a mapping"),
    ],
)
def test_config_refuses_a_bad_gallery_section_without_echoing_secrets(gallery, message):
    with pytest.raises(ConfigInvalid) as err:
        config.from_mapping({"gallery": gallery})
    assert message in err.value.detail and "s3cret" not in err.value.detail


def test_config_names_a_postgresql_store_and_round_trips(tmp_path):
    section = {"store": "postgresql", "dsn": "host=db1 dbname=gallery user=vp", "password_file": "/etc/vp/pw"}
    cfg = config.from_mapping({"gallery": section})
    assert cfg.gallery == GalleryConfig(**section)
    f = tmp_path / "c.yml"
    f.write_text(config.dump(cfg))
    assert config.load(f, env={}).gallery == cfg.gallery


@pytest.mark.parametrize(
    "dsn,message",
    [
        ("host=db password=s3cret dbname=g", "must not hold the password"),
        ("postgresql://vp:s3cret@db/g", "must not hold the password"),
        ("host=db = s3cret", "not a libpq connection string"),
        ("", "needs gallery.dsn"),
    ],
)
def test_a_postgresql_dsn_never_carries_the_password(tmp_path, dsn, message):
    with pytest.raises(ConfigInvalid, match=message) as err:
        open_store(GalleryConfig("postgresql", dsn), tmp_path)
    assert "s3cret" not in err.value.detail and not list(tmp_path.iterdir())
    assert parse_dsn("postgresql://vp@db:6432/g") == {"user": "vp", "host": "db", "port": "6432", "dbname": "g"}


def test_the_cli_takes_the_store_from_the_config(tmp_path, capsys):
    g = Gallery.open(tmp_path / "data", IndexParams(), "m", 2)
    g.build([NewFace("a", np.array([1, 0], np.float32), b"")], key="team")
    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text(f"service: face\ndata_dir: {tmp_path / 'data'}\ngallery: {{store: sqlite}}\n")
    bad.write_text(f"service: face\ndata_dir: {tmp_path / 'data'}\ngallery: {{store: sqlite, dsn: 'host=db'}}\n")
    assert cli.main(["--config", str(good), "list"]) == 0
    assert "team\t1 faces\t1 labels" in capsys.readouterr().out
    # --data-dir does not bypass the store the deploy's config names.
    assert cli.main(["--config", str(bad), "--data-dir", str(tmp_path / "data"), "list"]) == 1
    assert "config-invalid" in capsys.readouterr().err


def test_config_yml_of_a_default_deploy_has_no_gallery_section(tmp_path):
    # What releases before the section wrote, so an older installer still reads it.
    text = config.dump(config.from_mapping({"gallery": {"store": "sqlite", "dsn": ""}}))
    assert "gallery" not in text
    f = tmp_path / "c.yml"
    f.write_text(text)
    assert config.load(f, env={}).gallery == GalleryConfig()


def test_ready_says_how_current_the_gallery_store_is(tmp_path):
    _, _, client = service_on(tmp_path, MemoryStore())
    body = client.get("/ready").get_json()  # the test client is this machine: ops detail
    assert body["ready"] is True and body["gallery"] == {"store": "memory"}
