"""Service configuration: defaults in code, one YAML file, ``VISIONPACK_*`` overrides, validated once.

The installer writes one ``config.yml`` per release; gunicorn workers read it through
``VISIONPACK_CONFIG``. Environment variables override single keys (``VISIONPACK_PORT=9000``);
nested ``models``, ``options`` and ``gallery`` can only come from the file. ``load()`` returns a frozen object, so no
code path can see a half-validated config.

This is the one module of the service that reads (or sets) the process environment: the config
and its overrides, the variables install.py hands one master, and what native libraries read
(:func:`export_env`). A test holds every other module of the package to it; the installer's own
variables are read in installer/settings.py.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigInvalid

SERVICES = ("classification", "keypoint", "face")
ENV_PREFIX = "VISIONPACK_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"  # the config file (gunicorn's workers, the gallery CLI)
# Set by install.py for one gunicorn master (installer/procs.py, installer/runtimes/), never by an
# operator: the license slot descriptor an upgrade hands over, and the serve-public flag a standby
# release's workers wait for (handover.py). Not config keys: load() ignores them.
SLOT_FD_ENV = ENV_PREFIX + "INHERIT_SLOT_FD"
STANDBY_FLAG_ENV = ENV_PREFIX + "STANDBY_FLAG"
# Bytes a JSON envelope may add around a maximal base64 image.
ENVELOPE_SLACK = 64 * 1024
# The face-gallery stores this release has (gallery/store_factory.py opens them).
GALLERY_STORES = ("sqlite", "postgresql")
GALLERY_KEYS = ("store", "dsn", "password_file")
# Inference backends (inference/<kind>_engine.py); "auto" = the choice install/upgrade measured and
# wrote into the release's ``tuning`` (installer/tune.py), never re-measured under a running release.
BACKENDS = ("paddle", "onnxruntime", "openvino")
AUTO = "auto"
# f32 = Paddle's answers; bf16 (OpenVINO only) is faster on AVX512_BF16 CPUs and changes answers.
PRECISIONS = ("f32", "bf16")
# The engine settings one model may set for itself (``model_options``), over the deploy's.
MODEL_OPTION_KEYS = ("precision", "threads_per_worker", "openvino_streams")


@dataclass(frozen=True)
class GalleryConfig:
    """``gallery:`` in config.yml: which store holds the face gallery and, for a database
    server, where it is (``dsn``). The default, SQLite, keeps it in ``data_dir``."""

    store: str = "sqlite"
    dsn: str = ""
    # The database password's file (never in dsn, which config.yml and messages carry).
    password_file: str = ""


@dataclass(frozen=True)
class ServiceConfig:
    deploy: str = "demo-classify"
    service: str = "classification"
    host: str = "127.0.0.1"
    port: int = 8701
    workers: int = 1
    # Paddle math threads per worker; 0 = cores // workers, so workers never oversubscribe the CPU.
    threads_per_worker: int = 0
    # Requests a worker admits at once; the next one gets 336100 immediately instead of queueing.
    max_inflight: int = 8
    # Most images one inference may batch together (requests that queued while the engine was
    # busy; services/classification.py). 1 turns batching off.
    max_batch: int = 4
    timeout: int = 60
    graceful_timeout: int = 30
    # The HTTP front (api/front.py) reads every request whole before the app sees it. Like
    # nginx's client_header_timeout / client_body_timeout / keepalive_timeout, in seconds:
    # the whole head must arrive within header_timeout, the body may pause at most
    # body_timeout between two reads, an idle kept-alive connection is closed after
    # keepalive_timeout. Short, because an inference client sends its request at once.
    header_timeout: int = 10
    body_timeout: int = 10
    # The whole request (head and body) must arrive within this, however steadily it trickles.
    request_timeout: int = 60
    keepalive_timeout: int = 15
    # Open connections per worker (idle ones are closed first when it is reached) and the
    # largest request head; beyond it the answer is 431.
    max_connections: int = 1000
    max_header_bytes: int = 32 * 1024
    # A body over the limit is read and discarded up to this many bytes so that common
    # clients (requests, urllib) receive the 336004 answer instead of a broken pipe.
    max_drain_bytes: int = 64 * 1024 * 1024
    # Request bodies one worker holds in memory at once; beyond it, new bodies wait to be read.
    max_buffered_bytes: int = 256 * 1024 * 1024
    # error.log and access.log are rotated by size, shared safely by every worker.
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    # "cpu" or "gpu:N" (validate() turns a bare "gpu" into "gpu:0").
    device: str = "cpu"
    # Which inference backend runs the models: auto | paddle | onnxruntime | openvino (docs/backends.md).
    backend: str = AUTO
    # Per model (role -> backend), over ``backend``: the operator's own choice for one model.
    model_backends: Mapping[str, str] = field(default_factory=dict)
    # Per model (role -> {precision, threads_per_worker, openvino_streams}), over the deploy's values.
    model_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # f32 | bf16; OpenVINO's INFERENCE_PRECISION_HINT is always set from it (it would pick bf16 by itself).
    precision: str = "f32"
    # OpenVINO CPU streams per engine (each a parallel infer request); other backends ignore it.
    openvino_streams: int = 1
    # What install/upgrade measured (installer/tune.py): role -> {"backend": chosen, "candidates": ...}.
    # Written into the release's config.yml, read by the engine factory when ``backend`` is auto.
    tuning: Mapping[str, Any] = field(default_factory=dict)
    # Role -> bundle directory, e.g. {"classifier": ".../models/efficientnet_lite0_imagenet"}.
    models: Mapping[str, str] = field(default_factory=dict)
    # Service-specific settings (thresholds, gallery index type, ...), validated by the
    # service's build() at start, so a typo stops the service instead of being ignored.
    options: Mapping[str, Any] = field(default_factory=dict)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    # None = take the bundle manifest's verified choice (off when a bundle has no manifest).
    onednn: bool | None = None
    onednn_cache_capacity: int = 10
    # glibc's malloc thresholds raised for Paddle's per-run buffers on CPU (inference/paddle_engine.py
    # tune_malloc), and two malloc arenas for ONNX Runtime / OpenVINO workers (inference/memory.py),
    # both measured in benchmarks/README.md; VISIONPACK_MALLOC_TUNING=0 turns them off.
    malloc_tuning: bool = True
    visualize: bool = True
    max_image_b64_bytes: int = 4 * 1024 * 1024
    min_side: int = 15
    max_side: int = 4096
    default_top_num: int = 6
    # The operator console (GET /console, api/console/), behind the ops scope; false: no console routes.
    console: bool = True
    release: str = ""
    root: str = ""
    log_dir: str = ""
    run_dir: str = ""
    data_dir: str = ""
    license_dir: str = ""

    def effective_threads(self, cores: int | None = None) -> int:
        if self.threads_per_worker > 0:
            return self.threads_per_worker
        cores = cores or os.cpu_count() or 1
        return max(1, cores // max(1, self.workers))

    def http_threads(self) -> int:
        # Two spare threads so a request over the limit is read and refused at once.
        return self.max_inflight + 2

    def max_body_bytes(self) -> int:
        # The JSON envelope around a maximal base64 image (keys, other fields, padding).
        return self.max_image_b64_bytes + ENVELOPE_SLACK

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["models"] = dict(self.models)
        d["options"] = dict(self.options)
        d["model_backends"] = dict(self.model_backends)
        d["model_options"] = {k: dict(v) for k, v in self.model_options.items()}
        d["tuning"] = dict(self.tuning)
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(ServiceConfig)}


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _FIELDS[name].default
    if name == "models":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigInvalid(f"{source}: 'models' must map role names to bundle directories")
        return dict(value)
    if name == "options":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigInvalid(f"{source}: 'options' must be a mapping of setting names to values")
        return dict(value)
    if name == "gallery":
        return _gallery(value, source)
    if name == "model_backends":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigInvalid(f"{source}: 'model_backends' must map role names to backend names")
        return dict(value)
    if name == "model_options":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items()
        ):
            raise ConfigInvalid(f"{source}: 'model_options' must map role names to engine settings")
        out: dict[str, dict[str, Any]] = {}
        for role, settings in value.items():
            unknown = sorted(str(k) for k in set(settings) - set(MODEL_OPTION_KEYS))
            if unknown:
                raise ConfigInvalid(
                    f"{source}: unknown key(s) {', '.join(unknown)} in model_options.{role} "
                    f"(known: {', '.join(MODEL_OPTION_KEYS)})"
                )
            out[role] = {k: _coerce(k, v, f"{source}: model_options.{role}") for k, v in settings.items()}
        return out
    if name == "tuning":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items()
        ):
            raise ConfigInvalid(f"{source}: 'tuning' must map role names to measurement records")
        return {k: dict(v) for k, v in value.items()}
    if name == "onednn":
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("", "auto", "none"):
            return None
        return _coerce_bool(name, value, source)
    if isinstance(default, bool):
        return _coerce_bool(name, value, source)
    if isinstance(default, int):
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigInvalid(f"{source}: '{name}' must be an integer, got {value!r}") from None
    if not isinstance(value, (str, int, float)):
        raise ConfigInvalid(f"{source}: '{name}' must be a string, got {value!r}")
    return str(value)


def _gallery(value: Any, source: str) -> GalleryConfig:
    if not isinstance(value, Mapping):
        # The type only, never the value: a store's address may carry a password.
        raise ConfigInvalid(
            f"{source}: 'gallery' must be a mapping such as {{store: sqlite}}, got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in set(value) - set(GALLERY_KEYS))
    if unknown:
        raise ConfigInvalid(
            f"{source}: unknown key(s) {', '.join(unknown)} in 'gallery' (known: {', '.join(GALLERY_KEYS)})"
        )
    store = value.get("store", GalleryConfig.store)
    if store not in GALLERY_STORES:
        raise ConfigInvalid(
            f"{source}: gallery.store must be one of {', '.join(GALLERY_STORES)} "
            f"(the gallery stores of this release), got {store!r}"
        )
    dsn = "" if value.get("dsn") is None else value["dsn"]
    if not isinstance(dsn, str):
        raise ConfigInvalid(f"{source}: gallery.dsn must be a string, got {type(dsn).__name__}")
    password_file = "" if value.get("password_file") is None else value["password_file"]
    if not isinstance(password_file, str):
        raise ConfigInvalid(f"{source}: gallery.password_file must be a path, got {type(password_file).__name__}")
    return GalleryConfig(store, dsn, password_file)


def _coerce_bool(name: str, value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigInvalid(f"{source}: '{name}' must be true or false, got {value!r}")


def validate(cfg: ServiceConfig) -> ServiceConfig:
    if cfg.service not in SERVICES:
        raise ConfigInvalid(f"service must be one of {', '.join(SERVICES)}, got {cfg.service!r}")
    if not cfg.deploy or not all(c.isalnum() or c in "-_" for c in cfg.deploy):
        raise ConfigInvalid(f"deploy name must be letters, digits, '-' or '_', got {cfg.deploy!r}")
    if not 1 <= cfg.port <= 65535:
        raise ConfigInvalid(f"port must be 1..65535, got {cfg.port}")
    for name in (
        "workers",
        "max_inflight",
        "max_batch",
        "timeout",
        "max_image_b64_bytes",
        "min_side",
        "max_side",
        "default_top_num",
        "header_timeout",
        "body_timeout",
        "request_timeout",
        "keepalive_timeout",
        "max_connections",
        "max_header_bytes",
        "log_max_bytes",
        "max_buffered_bytes",
    ):
        if getattr(cfg, name) < 1:
            raise ConfigInvalid(f"'{name}' must be at least 1, got {getattr(cfg, name)}")
    if cfg.max_header_bytes < 1024:
        raise ConfigInvalid(f"'max_header_bytes' must be at least 1024, got {cfg.max_header_bytes}")
    if cfg.max_drain_bytes < 0 or cfg.log_backups < 0:
        raise ConfigInvalid("'max_drain_bytes' and 'log_backups' must be 0 or more")
    if cfg.threads_per_worker < 0:
        raise ConfigInvalid("'threads_per_worker' must be 0 (auto) or more")
    return _validate_backend(_validate_device(cfg))


def _validate_device(cfg: ServiceConfig) -> ServiceConfig:
    device = cfg.device.strip().lower()
    kind, colon, index = device.partition(":")
    if device == "cpu":
        return cfg if cfg.device == device else dataclasses.replace(cfg, device=device)
    if kind == "gpu" and (not colon or (index.isdigit() and len(index) <= 3)):
        normal = f"gpu:{int(index or 0)}"
        return cfg if cfg.device == normal else dataclasses.replace(cfg, device=normal)
    raise ConfigInvalid(f"device must be 'cpu' or 'gpu:N' (N the GPU's index, e.g. gpu:0), got {cfg.device!r}")


def _validate_backend(cfg: ServiceConfig) -> ServiceConfig:
    choices = (AUTO, *BACKENDS)
    if cfg.backend not in choices:
        raise ConfigInvalid(f"backend must be one of {', '.join(choices)}, got {cfg.backend!r}")
    for role, kind in cfg.model_backends.items():
        if kind not in choices:
            raise ConfigInvalid(f"model_backends.{role} must be one of {', '.join(choices)}, got {kind!r}")
    if cfg.precision not in PRECISIONS:
        raise ConfigInvalid(f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.precision == "bf16" and not {"openvino", AUTO} & {cfg.backend, *cfg.model_backends.values()}:
        raise ConfigInvalid(f"precision bf16 is an OpenVINO setting; backend {cfg.backend} runs f32 only")
    if cfg.openvino_streams < 1:
        raise ConfigInvalid(f"'openvino_streams' must be at least 1, got {cfg.openvino_streams}")
    for role in cfg.model_options:
        for_model(cfg, role)  # each model's own settings, validated as the deploy's are
    for role, record in cfg.tuning.items():
        if record.get("backend") not in BACKENDS:
            raise ConfigInvalid(
                f"tuning.{role}.backend must be one of {', '.join(BACKENDS)}, got {record.get('backend')!r}"
            )
    return cfg


def for_model(cfg: ServiceConfig, role: str | None) -> ServiceConfig:
    """``cfg`` with one model's ``model_options`` applied (the engine settings it runs with)."""
    own = cfg.model_options.get(role or "")
    if not own:
        return cfg
    mine = dataclasses.replace(cfg, model_options={}, **own)
    try:
        if mine.threads_per_worker < 0:
            raise ConfigInvalid("'threads_per_worker' must be 0 (auto) or more")
        return _validate_backend(mine)
    except ConfigInvalid as exc:
        raise ConfigInvalid(f"model_options.{role}: {exc.detail}") from None


def from_mapping(data: Mapping[str, Any], source: str = "config") -> ServiceConfig:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigInvalid(f"{source}: unknown key(s) {', '.join(unknown)}")
    values = {k: _coerce(k, v, source) for k, v in data.items()}
    return validate(ServiceConfig(**values))


def load(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> ServiceConfig:
    """Defaults <- YAML file (``path`` or ``$VISIONPACK_CONFIG``) <- ``VISIONPACK_<KEY>`` variables."""
    import yaml

    env = os.environ if env is None else env
    path = path or config_path(env)
    data: dict[str, Any] = {}
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigInvalid(f"cannot read config {path}: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigInvalid(f"{path}: top level must be a mapping")
        data.update(raw)
    for name in _FIELDS:
        key = ENV_PREFIX + name.upper()
        if name not in ("models", "options", "gallery", "model_backends", "model_options", "tuning") and key in env:
            data[name] = env[key]
    return from_mapping(data, source=str(path or "environment"))


def dump(cfg: ServiceConfig) -> str:
    import yaml

    data = cfg.to_dict()
    if cfg.gallery == GalleryConfig():
        # The default store is left out, so a release's config.yml stays what releases before
        # the gallery section wrote and read (an older installer still reads this one).
        del data["gallery"]
    if cfg.malloc_tuning:
        del data["malloc_tuning"]  # likewise: the default is left out
    for name in ("backend", "model_backends", "model_options", "precision", "openvino_streams", "tuning"):
        if data[name] == _FIELDS[name].default or (
            name in ("model_backends", "model_options", "tuning") and not data[name]
        ):
            del data[name]  # likewise: defaults left out (the backends came with issue 16)
    return yaml.safe_dump(data, sort_keys=True, allow_unicode=True)


# --- the process environment, beyond the config's overrides ---------------------------------------


def config_path(env: Mapping[str, str] | None = None) -> str | None:
    """The config file ``$VISIONPACK_CONFIG`` names (of ``env`` when given), or None."""
    return (os.environ if env is None else env).get(CONFIG_ENV) or None


def take_inherited_slot_fd() -> int | None:
    """The license slot descriptor an upgrade's old master handed over, taken out of the environment
    so that forked workers never see it (the slot is the master's business)."""
    value = os.environ.pop(SLOT_FD_ENV, None)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigInvalid(f"{SLOT_FD_ENV} must be a descriptor number, got {value!r}") from None


def standby_flag() -> str | None:
    """The serve-public flag this master's workers wait for before they accept (None: at once)."""
    return os.environ.get(STANDBY_FLAG_ENV) or None


def set_standby_flag(path: str) -> None:
    """Name the flag for the workers this master forks (a Docker standby learns it from a file)."""
    os.environ[STANDBY_FLAG_ENV] = path


def export_env(values: Mapping[str, str], *, keep_existing: bool = False) -> None:
    """Put ``values`` in this process's environment, for it and what it forks: native libraries
    (OpenMP, MKL, OpenBLAS, glog, Paddle's ``FLAGS_*``) read their settings from there when they
    load. ``keep_existing``: an operator's own value of a name wins."""
    for name, value in values.items():
        if keep_existing:
            os.environ.setdefault(name, value)
        else:
            os.environ[name] = value
