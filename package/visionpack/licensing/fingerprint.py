"""Hardware fingerprint: salted hashes of identifiers read from this machine.

Every path below is a module constant on purpose: no argument, environment variable or
config can point the reader somewhere else, so a fingerprint cannot be faked by
redirecting it to a file the operator wrote. Raw identifiers never leave this module;
only ``HMAC-SHA256(key="visionpack/fp/v1/<component>", value)`` does, so the request
file an operator mails to the vendor reveals no serial numbers, and a hash of one
component can never be replayed as another (domain separation).
"""

from __future__ import annotations

import glob
import hashlib
import hmac
import os
import re
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FP_VERSION = 1
PRODUCT = "visionpack"
# Order matters only for display; matching is by name.
COMPONENTS = ("machine_id", "product_uuid", "board_serial", "mac", "cpu", "disk_serial")

_MACHINE_ID_PATHS = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_DMI_DIR = "/sys/class/dmi/id"
_NET_DIR = "/sys/class/net"
_CPUINFO = "/proc/cpuinfo"
_SYS_DEV_BLOCK = "/sys/dev/block"
_DISK_BY_ID = "/dev/disk/by-id"
# Absolute paths only: resolving through $PATH would let an environment variable pick a fake.
_NVIDIA_SMI = ("/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi")
_NVIDIA_PROC = "/proc/driver/nvidia/gpus"

# Placeholder values firmware vendors ship; hashing them would make unrelated machines "match".
_BOGUS = {
    "",
    "none",
    "null",
    "n/a",
    "na",
    "0",
    "default string",
    "to be filled by o.e.m.",
    "not specified",
    "not applicable",
    "system serial number",
    "0123456789",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
}
_MAX_READ = 4096


def component_hash(component: str, value: str) -> str:
    """Domain-separated hash of one identifier (hex)."""
    key = f"{PRODUCT}/fp/v{FP_VERSION}/{component}".encode()
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def gpu_hash(uuid: str) -> str:
    """Hash of a GPU UUID as nvidia-smi prints it (``GPU-…``); case and spaces ignored."""
    return component_hash("gpu_uuid", uuid.strip().lower())


def clean(value: str | None) -> str | None:
    """Normalise a raw identifier; None for missing or well-known placeholder values."""
    if value is None:
        return None
    value = value.strip().strip("\x00").strip()
    if value.lower() in _BOGUS or set(value) <= {"0", "-", ":", " "}:
        return None
    return value


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(_MAX_READ).decode("utf-8", "replace")
    except OSError:  # unreadable (non-root DMI serials) is the same as absent
        return None


def read_machine_id() -> str | None:
    for path in _MACHINE_ID_PATHS:
        value = clean(_read(path))
        if value:
            return value.lower()
    return None


def read_dmi(name: str) -> str | None:
    value = clean(_read(os.path.join(_DMI_DIR, name)))
    return value.lower() if value and name == "product_uuid" else value


def read_macs() -> list[str]:
    """MACs of physical NICs: those backed by a device, not under /sys/devices/virtual."""
    macs = set()
    try:
        names = sorted(os.listdir(_NET_DIR))
    except OSError:
        return []
    for name in names:
        base = os.path.join(_NET_DIR, name)
        if not os.path.exists(os.path.join(base, "device")):
            continue
        if "/virtual/" in os.path.realpath(base):
            continue
        # 1 = random address: it changes every boot, so it would only ever cause mismatches.
        if (_read(os.path.join(base, "addr_assign_type")) or "0").strip() == "1":
            continue
        mac = clean(_read(os.path.join(base, "address")))
        if mac and re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac):
            macs.add(mac.lower())
    return sorted(macs)


def read_cpu() -> str | None:
    """CPU model plus logical count, e.g. ``AMD EPYC|2``."""
    text = _read_all(_CPUINFO)
    if text is None:
        return None
    model = None
    arm: dict[str, str] = {}
    count = 0
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip().lower()
        if key == "processor":
            count += 1
        elif model is None and key in ("model name", "hardware", "cpu model", "uarch"):
            model = val.strip()
        elif key in ("cpu implementer", "cpu part"):
            arm.setdefault(key, val.strip())
    if model is None and arm:  # many ARM kernels print no model name, only implementer/part ids
        model = f"arm {arm.get('cpu implementer', '?')}/{arm.get('cpu part', '?')}"
    model = clean(model)
    if not model or count == 0:
        return None
    return f"{model}|{count}"


def _read_all(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None


def root_disk_dir() -> str | None:
    """/sys/block/<disk> holding the root filesystem (partition -> disk, dm/md -> first slave)."""
    node = None
    # "/" first; in a container "/" is an overlay with no block device, and the host's root
    # filesystem is seen through the machine id file mounted from it (docs/docker.md).
    for probe in ("/", *_MACHINE_ID_PATHS):
        try:
            dev = os.stat(probe).st_dev
        except OSError:
            continue
        candidate = os.path.join(_SYS_DEV_BLOCK, f"{os.major(dev)}:{os.minor(dev)}")
        if os.path.exists(candidate):
            node = candidate
            break
    if node is None:
        return None  # overlay/tmpfs roots have no block device
    path = os.path.realpath(node)
    for _ in range(4):  # stacked dm-on-md-on-partition is the deepest we expect
        if os.path.exists(os.path.join(path, "partition")):
            path = os.path.dirname(path)
            continue
        slaves = sorted(glob.glob(os.path.join(path, "slaves", "*")))
        if slaves:
            path = os.path.realpath(slaves[0])
            continue
        break
    return path


def read_disk_serial() -> str | None:
    disk = root_disk_dir()
    if disk is None:
        return None
    for rel in ("serial", "device/serial", "wwid", "device/wwid"):
        value = clean(_read(os.path.join(disk, rel)))
        if value:
            return value
    name = os.path.basename(disk)
    try:
        ids = sorted(os.listdir(_DISK_BY_ID))
    except OSError:
        return None
    for entry in ids:
        if "-part" in entry:
            continue
        target = os.path.basename(os.path.realpath(os.path.join(_DISK_BY_ID, entry)))
        if target == name:
            return entry
    return None


def read_gpu_uuids() -> list[str]:
    """GPU UUIDs in index order; [] without an NVIDIA driver."""
    for exe in _NVIDIA_SMI:
        if not os.access(exe, os.X_OK):
            continue
        try:
            # Clean environment: LD_PRELOAD or CUDA_VISIBLE_DEVICES must not change the answer.
            out = subprocess.run(
                [exe, "--query-gpu=uuid", "--format=csv,noheader"],
                capture_output=True,
                timeout=15,
                env={"PATH": "/usr/bin:/bin"},
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            uuids = [ln.strip() for ln in out.stdout.decode("utf-8", "replace").splitlines()]
            uuids = [u for u in uuids if u.upper().startswith("GPU-")]
            if uuids:
                return uuids
    uuids = []
    for info in sorted(glob.glob(os.path.join(_NVIDIA_PROC, "*", "information"))):
        for line in (_read(info) or "").splitlines():
            key, _, val = line.partition(":")
            if key.strip().lower() == "gpu uuid" and val.strip():
                uuids.append(val.strip())
    return uuids


@dataclass(frozen=True)
class Fingerprint:
    """Component hashes of one machine; ``None`` marks a component this machine lacks."""

    components: Mapping[str, str | None]
    gpus: tuple[str, ...] = ()
    hostname: str = ""
    collected_at: float = field(default=0.0)

    def present(self) -> dict[str, str]:
        return {k: v for k, v in self.components.items() if v is not None}

    def gpu_index(self, uuid_hash: str) -> int | None:
        """Index (nvidia-smi order) of the GPU with this hash, for the runtime to pick it."""
        try:
            return self.gpus.index(uuid_hash)
        except ValueError:
            return None

    def to_request(self, customer_hint: str | None = None, version: str | None = None) -> dict[str, Any]:
        """The JSON document the operator sends to the vendor to get a license."""
        return {
            "kind": "visionpack-license-request",
            "request_version": 1,
            "product": PRODUCT,
            "version": version if version is not None else package_version(),
            "fp_version": FP_VERSION,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.collected_at or time.time())),
            "hostname_hint": self.hostname,
            "customer_hint": customer_hint,
            "components": {name: self.components.get(name) for name in COMPONENTS},
            "gpus": list(self.gpus),
        }

    def diff(self, lic: Any) -> list[tuple[str, str]]:
        """Per component: ``match``, ``mismatch``, ``absent`` (bound, missing here) or ``not-bound``."""
        rows: list[tuple[str, str]] = []
        bound: Mapping[str, str] = lic.components
        names = list(COMPONENTS) + sorted(set(bound) - set(COMPONENTS))
        for name in names:
            mine = self.components.get(name)
            if name not in bound:
                if mine is not None:
                    rows.append((name, "not-bound"))
                continue
            if mine is None:
                rows.append((name, "absent"))
            else:
                rows.append((name, "match" if hmac.compare_digest(mine, bound[name]) else "mismatch"))
        if lic.binding.get("type") == "gpu":
            want = lic.binding.get("uuid_hash", "")
            rows.append(("gpu", "match" if want in self.gpus else ("absent" if not self.gpus else "mismatch")))
        return rows


def package_version() -> str:
    """The package VERSION file next to visionpack/ ("unknown" when run from elsewhere)."""
    value = _read(str(Path(__file__).resolve().parents[2] / "VERSION"))
    return (value or "unknown").strip() or "unknown"


def collect() -> Fingerprint:
    """Read every component from this machine now (takes up to a few ms; nvidia-smi longer)."""
    raw: dict[str, str | None] = {
        "machine_id": read_machine_id(),
        "product_uuid": read_dmi("product_uuid"),
        "board_serial": read_dmi("board_serial"),
        "mac": ",".join(read_macs()) or None,
        "cpu": read_cpu(),
        "disk_serial": read_disk_serial(),
    }
    hashed = {k: (component_hash(k, v) if v is not None else None) for k, v in raw.items()}
    gpus = tuple(gpu_hash(u) for u in read_gpu_uuids())
    return Fingerprint(components=hashed, gpus=gpus, hostname=socket.gethostname(), collected_at=time.time())


def diff(lic: Any, fingerprint: Fingerprint | None = None) -> list[tuple[str, str]]:
    """``collect().diff(lic)`` unless a fingerprint is given."""
    return (fingerprint or collect()).diff(lic)
