"""The runtime image of a package and the engine it goes into: the Docker SDK (imported from the
wheelhouse when the system python lacks it), a client, and ``docker load`` of
``original/images/visionpack-runtime-<lock sha256[:16]>.tar`` unless the engine has that image id.
No registry is ever contacted (docs/docker.md). docker_containers.py re-exports it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import DockerUnavailable, PackageCorrupt, RuntimeInstallFailed

IMAGE_NAME = "visionpack-runtime"


def sdk(wheels: Path | None = None) -> Any:
    """The ``docker`` module; from the pure-Python wheels of ``wheels`` if the python lacks it.

    The installer runs on the system python (no third-party packages); the wheelhouse carries
    docker, requests, urllib3, idna, certifi and charset_normalizer, which import from the wheel
    zips directly, as yamlload does for PyYAML.
    """
    try:
        import docker

        return docker
    except ImportError:
        if wheels is None:
            raise RuntimeInstallFailed("the Docker SDK for Python (docker) is not importable") from None
    for prefix in ("docker", "requests", "urllib3", "idna", "certifi", "charset_normalizer"):
        for wheel in sorted(Path(wheels).glob(f"{prefix}-*.whl")):
            if str(wheel) not in sys.path:
                sys.path.append(str(wheel))
    try:
        import docker

        return docker
    except ImportError as exc:
        raise RuntimeInstallFailed(f"the Docker SDK for Python is neither installed nor in {wheels} ({exc})") from None


def connect(wheels: Path | None = None) -> Any:
    """A client of the local engine (/var/run/docker.sock or $DOCKER_HOST); DockerUnavailable if none answers.

    ``wheels`` defaults to the wheelhouse of the package this installer runs from.
    """
    docker = sdk(wheels or Path(__file__).resolve().parents[4] / "original" / "wheels")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException or requests' errors
        raise DockerUnavailable(
            f"no Docker engine answers ({exc}); start it (e.g. bash .ci/docker-engine.sh)"
        ) from None
    return client


@dataclass(frozen=True)
class ImageRef:
    tag: str
    tar: Path
    image_id: str  # sha256:… as recorded at build time; "" if the record is missing
    sha256: str


def image_ref(top: Path) -> ImageRef:
    """The image the package ``top`` carries for its requirements.lock."""
    lock = Path(top) / "original" / "requirements.lock"
    try:
        key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    except OSError:
        raise PackageCorrupt(f"{lock} is missing; run 'bash download.sh'") from None
    tar = Path(top) / "original" / "images" / f"{IMAGE_NAME}-{key}.tar"
    try:
        rec = json.loads(tar.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        rec = {}
    return ImageRef(f"{IMAGE_NAME}:{key}", tar, str(rec.get("image_id") or ""), str(rec.get("sha256") or ""))


def local_image_id(client: Any, name: str) -> str | None:
    try:
        image_id: str = client.images.get(name).id
        return image_id
    except Exception:  # ImageNotFound, or a malformed name
        return None


def load_image(client: Any, ref: ImageRef, *, say: Callable[[str], None] = print) -> tuple[str, bool]:
    """(image id, loaded?) — nothing is read from the tar if the engine has the recorded id."""
    have = local_image_id(client, ref.tag)
    if have and (not ref.image_id or have == ref.image_id):
        return have, False
    if ref.image_id and local_image_id(client, ref.image_id):
        client.images.get(ref.image_id).tag(*ref.tag.split(":", 1))
        return ref.image_id, False
    if not ref.tar.is_file():
        raise PackageCorrupt(f"{ref.tar} is missing; build it with 'bash download.sh --image'")
    if ref.sha256:
        from ...fsutil import sha256_file

        if sha256_file(ref.tar) != ref.sha256:
            raise PackageCorrupt(
                f"{ref.tar} does not match its recorded sha256; rebuild it with 'bash download.sh --image'"
            )
    say(f"loading image {ref.tag} from {ref.tar} ({ref.tar.stat().st_size >> 20} MiB)")
    with open(ref.tar, "rb") as fh:
        client.images.load(fh)
    got = local_image_id(client, ref.tag)
    if got is None or (ref.image_id and got != ref.image_id):
        raise PackageCorrupt(f"{ref.tar} did not load as {ref.tag} {ref.image_id or ''} (got {got})")
    return got, True


def image_id_or_tag(client: Any, ref: ImageRef, say: Callable[[str], None]) -> str:
    """Load ``ref`` if needed; its tag (what 'docker ps' shows) if that names it, else its id."""
    image_id, _ = load_image(client, ref, say=say)
    return ref.tag if local_image_id(client, ref.tag) == image_id else image_id
