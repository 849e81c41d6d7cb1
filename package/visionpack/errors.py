"""One error hierarchy for the whole product.

Every failure an operator or a client can meet is a subclass of :class:`VisionpackError`
with stable identifiers, so the HTTP API, the installer's exit status and the diagnostics
all speak the same vocabulary::

    VisionpackError                      slug, easydl_code, http_status, exit_code, hint
    ├── RequestError                     bad input from an API client (HTTP 400)
    │   ├── InvalidArgument              336001
    │   ├── InvalidJson                  336002
    │   ├── Base64DecodeFailed           336003
    │   ├── ImageSizeInvalid             336004
    │   ├── ImageDecodeFailed            336005
    │   └── MissingParameter             336006
    ├── ServiceUnavailable               336100 (in-flight limit, model not loaded)
    │   └── GalleryUnavailable           336101 (the gallery's database server unreachable)
    ├── InternalError                    336000
    ├── LicenseError                     337000 (the licensing package subclasses it)
    ├── AccessTokenInvalid               110 (no / unknown / revoked API key; HTTP 401)
    ├── NoPermission                     6 (the key lacks the route's scope; HTTP 403)
    └── InstallerError                   operator-side failures, one exit code each

The README's error table is generated from :func:`error_table`; a unit test keeps the two
equal, so each code is documented exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar


class VisionpackError(Exception):
    """Base of every error the product raises on purpose."""

    slug: ClassVar[str] = "internal-error"
    easydl_code: ClassVar[int] = 336000
    easydl_msg: ClassVar[str] = "Internal error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    hint: ClassVar[str] = (
        "Retry; if it persists run trouble_shooting/trouble_shooting.sh --bundle and send the tarball to support."
    )

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.easydl_msg)
        self.detail = detail or self.easydl_msg


class InternalError(VisionpackError):
    """Unexpected failure inside the service; the log line with the same log_id says why."""


# --- API request errors (EasyDL codes from seed 004) -------------------------------------


class RequestError(VisionpackError):
    http_status = 400
    exit_code = 2


class InvalidArgument(RequestError):
    http_status = 422  # PaddleX answers schema problems with pydantic's 422
    slug = "invalid-argument"
    easydl_code = 336001
    easydl_msg = "Invalid Argument"
    hint = (
        "Send Content-Type: application/json and check each field's type and range"
        " (e.g. top_num is a positive integer)."
    )


class InvalidJson(RequestError):
    http_status = 422  # PaddleX answers schema problems with pydantic's 422
    slug = "invalid-json"
    easydl_code = 336002
    easydl_msg = "JSON不合法"
    hint = "The body must be one JSON object; check quoting and encoding (UTF-8)."


class Base64DecodeFailed(RequestError):
    slug = "base64-decode-failed"
    easydl_code = 336003
    easydl_msg = "Base64解码失败"
    hint = "Send plain base64 of the file bytes; strip any 'data:image/...;base64,' header."


class ImageSizeInvalid(RequestError):
    slug = "image-size-invalid"
    easydl_code = 336004
    easydl_msg = "输入文件大小不合法"
    hint = "Base64 must be at most 4 MB; image sides must be 15..4096 px. Resize or recompress the image."


class ImageDecodeFailed(RequestError):
    slug = "image-decode-failed"
    easydl_code = 336005
    easydl_msg = "图片解码失败"
    hint = "Only jpg, png and bmp are accepted; check the file is not truncated."


class MissingParameter(RequestError):
    http_status = 422  # PaddleX answers schema problems with pydantic's 422
    slug = "missing-parameter"
    easydl_code = 336006
    easydl_msg = "缺失必要参数"
    hint = "The 'image' field is required."


class ServiceUnavailable(VisionpackError):
    slug = "model-unavailable"
    easydl_code = 336100
    easydl_msg = "model temporarily unavailable"
    http_status = 503
    exit_code = 1
    hint = "The worker is at its in-flight limit or still loading; wait and retry, or raise --workers / max_inflight."


class GalleryUnavailable(ServiceUnavailable):
    """The face gallery's database server cannot be reached (gallery.store postgresql)."""

    slug = "gallery-unavailable"
    easydl_code = 336101
    easydl_msg = "gallery database temporarily unavailable"
    hint = (
        "Gallery writes wait for the database (nothing was written); searches go on over the last synced "
        "gallery. Check the database server and 'trouble_shooting.sh DEPLOY' (docs/scale-out.md)."
    )


class LicenseError(VisionpackError):
    """Any licensing failure. ``reason`` is a stable machine-readable sub-code."""

    slug = "auth-check-failed"
    easydl_code = 337000
    easydl_msg = "Auth check failed"
    http_status = 403
    exit_code = 20
    hint = "Run 'install.py fingerprint --diff licenses/license.lic' to see why, then 'install.py lu NEW_LICENSE'."

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


# --- API credentials (visionpack/access; Baidu's own codes, so Baidu SDK clients recognise them)


class AccessTokenInvalid(VisionpackError):
    """No API key, an unknown one, or a revoked/expired one where the route's policy wants a key.

    ``reason`` (missing | unknown | revoked | expired) and ``key_id`` go to the log, never to
    clients: a client must not learn whether a guessed key once existed.
    """

    slug = "access-token-invalid"
    easydl_code = 110
    easydl_msg = "Access token invalid or no longer valid"
    http_status = 401
    hint = (
        "Send a current API key ('install.py apikey create DEPLOY --scope S') as 'Authorization: Bearer KEY', "
        "'X-API-Key: KEY' or '?access_token=KEY'; 'install.py apikey list DEPLOY' shows which are revoked."
    )

    def __init__(self, reason: str, detail: str = "", key_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.key_id = key_id


class NoPermission(VisionpackError):
    """A valid API key that does not hold the route's scope (infer, gallery or ops)."""

    slug = "no-permission"
    easydl_code = 6
    easydl_msg = "No permission to access data"
    http_status = 403
    hint = (
        "The key lacks the route's scope; create one that has it ('install.py apikey create DEPLOY "
        "--scope S', S one of infer, gallery, ops) or change the policy ('install.py apikey policy')."
    )

    def __init__(self, scope: str, detail: str = "", key_id: str | None = None) -> None:
        super().__init__(detail or f"this API key does not hold the '{scope}' scope")
        self.reason = f"scope-{scope}"
        self.scope = scope
        self.key_id = key_id


# --- installer errors: one distinct exit code each ---------------------------------------


class InstallerError(VisionpackError):
    http_status = 500


class UsageError(InstallerError):
    slug = "usage"
    exit_code = 2
    hint = (
        "Run the command with --help for its commands and options"
        " ('install.py --help', 'python3 -m visionpack.gallery --help')."
    )


class EnvironmentCheckFailed(InstallerError):
    slug = "environment-check-failed"
    exit_code = 10
    hint = "Fix the items listed above, or pass --force to install anyway."


class PortInUse(InstallerError):
    slug = "port-in-use"
    exit_code = 11
    hint = "Pick another port with --port N, or stop what listens there ('ss -ltnp')."


class PackageCorrupt(InstallerError):
    slug = "package-corrupt"
    exit_code = 12
    hint = "Run 'bash download.sh --verify' to see which file is damaged, then 'bash download.sh' to repair it."


class UnknownDeploy(InstallerError):
    slug = "unknown-deploy"
    exit_code = 13
    hint = "Run 'install.py search' to list what this package offers."


class NotInstalled(InstallerError):
    slug = "not-installed"
    exit_code = 14
    hint = (
        "Run 'install.py list' to see the installed deploys and the releases each keeps;"
        " install the deploy first, or pick a kept release."
    )


class AlreadyInstalled(InstallerError):
    slug = "already-installed"
    exit_code = 15
    hint = (
        "'install.py list' shows what is installed and kept: upgrade with a newer package,"
        " roll back to a kept release, or 'install.py remove' first."
    )


class RuntimeInstallFailed(InstallerError):
    slug = "runtime-install-failed"
    exit_code = 16
    hint = "Check original/wheels with 'bash download.sh --verify'; the pip log is in <root>/.runtime/install.log."


class StartFailed(InstallerError):
    slug = "start-failed"
    exit_code = 17
    hint = "Read <root>/<deploy>/logs/error.log; run trouble_shooting/trouble_shooting.sh for a diagnosis."


class StopFailed(InstallerError):
    slug = "stop-failed"
    exit_code = 18
    hint = "The service did not stop in time; check 'install.py status' and kill the listed pids."


class ConfigInvalid(InstallerError):
    slug = "config-invalid"
    exit_code = 19
    hint = "Fix the named key in config.yml or the VISIONPACK_* environment variable."


class OperationLocked(InstallerError):
    slug = "operation-locked"
    exit_code = 21
    hint = "Another install.py is working on this deploy; wait for it to finish."


class ModelInvalid(InstallerError):
    slug = "model-invalid"
    exit_code = 22
    hint = (
        "The model bundle is missing inference.json/.pdmodel, .pdiparams or inference.yml,"
        " or its yml is not a PaddleX export."
    )


class DockerUnavailable(InstallerError):
    slug = "docker-unavailable"
    exit_code = 23
    hint = (
        "Start the Docker engine ('bash .ci/docker-engine.sh' runs dockerd --bridge=none --iptables=false), "
        "or install with --runtime process (docs/docker.md)."
    )


class GpuUnavailable(InstallerError):
    """``device: gpu:N`` where the GPU cannot be used: no NVIDIA driver, no GPU N, or a runtime
    without ONNX Runtime's CUDA provider (the CPU package)."""

    slug = "gpu-unavailable"
    exit_code = 24
    hint = (
        "Run 'nvidia-smi -L' (driver, GPU indexes); install the GPU package ('bash download.sh --gpu cu12', "
        "docs/gpu.md) or set the deploy's device to cpu."
    )


class SystemdUnavailable(InstallerError):
    """``install --systemd`` (or ``--runtime systemd``) where systemd is not PID 1: a container, a chroot."""

    slug = "systemd-unavailable"
    exit_code = 25
    hint = (
        "Install without --systemd (the process runtime, the default) or on a machine booted with systemd "
        '(docs/operator-guide.md "systemd").'
    )


def all_error_classes() -> Iterator[type[VisionpackError]]:
    """Every concrete error class, depth first, base first."""
    stack: list[type[VisionpackError]] = [VisionpackError]
    seen: set[type] = set()
    while stack:
        cls = stack.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        stack[0:0] = sorted(cls.__subclasses__(), key=lambda c: c.__name__)


def error_table() -> list[dict[str, object]]:
    """Rows for the README table: where each code shows up and how to fix it."""
    rows: list[dict[str, object]] = []
    classes = sorted(all_error_classes(), key=lambda c: (not isinstance_api(c), c.easydl_code, c.exit_code, c.slug))
    for cls in classes:
        if cls in (VisionpackError, RequestError, InstallerError):
            continue
        api = isinstance_api(cls)
        rows.append(
            {
                "name": cls.__name__,
                "slug": cls.slug,
                "easydl_code": cls.easydl_code if api else None,
                "http_status": cls.http_status if api else None,
                "exit_code": cls.exit_code if not issubclass(cls, RequestError) else None,
                "message": cls.easydl_msg if api else None,
                "hint": cls.hint,
            }
        )
    return rows


def isinstance_api(cls: type[VisionpackError]) -> bool:
    """True for errors an HTTP client can receive."""
    return not issubclass(cls, InstallerError)
