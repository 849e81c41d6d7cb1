"""Fingerprint: read from this machine, salted, absent components recorded as absent (read by a
child process in a hostile environment: tests/integration/licensing/test_fingerprint.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from visionpack.licensing import fingerprint as fpmod, license as fmt

REPO = Path(__file__).resolve().parents[3]

HEX64 = re.compile(r"[0-9a-f]{64}")


def test_collect_is_stable_and_hashed(machine):
    again = fpmod.collect()
    assert again.components == machine.components and again.gpus == machine.gpus
    assert set(machine.components) == set(fpmod.COMPONENTS)
    for name, value in machine.components.items():
        assert value is None or HEX64.fullmatch(value), name


def test_machine_id_is_the_real_one(machine):
    raw = None
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        if os.path.exists(path):
            raw = Path(path).read_text().strip().lower()
            break
    assert raw, "this host has no machine id"
    assert machine.components["machine_id"] == fpmod.component_hash("machine_id", raw)
    # The raw identifier never appears in what leaves the machine.
    assert raw not in json.dumps(machine.to_request())


def test_absent_is_none_not_hash_of_empty(machine):
    empty_hashes = {fpmod.component_hash(n, "") for n in fpmod.COMPONENTS}
    assert not empty_hashes & set(machine.present().values())
    for name in ("product_uuid", "board_serial"):
        path = f"/sys/class/dmi/id/{name}"
        readable = os.access(path, os.R_OK) and fpmod.clean(Path(path).read_text()) is not None
        assert (machine.components[name] is not None) == readable


def test_physical_nics_only(machine):
    macs = []
    for name in sorted(os.listdir("/sys/class/net")):
        base = f"/sys/class/net/{name}"
        if os.path.exists(f"{base}/device") and "/virtual/" not in os.path.realpath(base):
            macs.append(Path(f"{base}/address").read_text().strip().lower())
    macs = sorted(set(m for m in macs if m != "00:00:00:00:00:00"))
    assert fpmod.read_macs() == macs
    expected = fpmod.component_hash("mac", ",".join(macs)) if macs else None
    assert machine.components["mac"] == expected


def test_cpu_model_and_count():
    value = fpmod.read_cpu()
    assert value is not None
    model, count = value.rsplit("|", 1)
    text = Path("/proc/cpuinfo").read_text()
    assert int(count) == len(re.findall(r"^processor\s*:", text, re.M)) and model


def test_domain_separation():
    assert fpmod.component_hash("mac", "x") != fpmod.component_hash("cpu", "x")
    assert fpmod.component_hash("mac", "x") != __import__("hashlib").sha256(b"x").hexdigest()
    assert fpmod.gpu_hash("GPU-ABC ") == fpmod.gpu_hash("gpu-abc")


def test_placeholders_are_absent():
    for junk in (
        "To Be Filled By O.E.M.",
        "Default string",
        "00000000-0000-0000-0000-000000000000",
        "  ",
        "\x00\x00",
        "0",
        "None",
        "00:00:00:00:00:00",
    ):
        assert fpmod.clean(junk) is None, junk
    assert fpmod.clean(" ABC123\n") == "ABC123"


def test_request_document(machine):
    req = machine.to_request("ACME")
    assert req["kind"] == "visionpack-license-request" and req["product"] == "visionpack"
    assert req["customer_hint"] == "ACME" and req["hostname_hint"]
    assert req["version"] == (REPO / "package" / "VERSION").read_text().strip()
    fmt.parse_time(req["created_at"], "created_at")
    assert req["components"] == dict(machine.components) and req["gpus"] == list(machine.gpus)


def test_diff_statuses(issue, machine, request_doc):
    changed = next(n for n in machine.present() if n != "machine_id")
    req = json.loads(json.dumps(request_doc))
    absent = [k for k in fpmod.COMPONENTS if req["components"][k] is None]
    if absent:
        req["components"][absent[0]] = fpmod.component_hash(absent[0], "x")
    present = list(machine.present())
    dropped = next(n for n in present if n not in ("machine_id", changed))
    req["components"][dropped] = None
    lic = fmt.parse(issue(request=req, change=(changed,), min_match=1))
    rows = dict(machine.diff(lic))
    assert rows["machine_id"] == "match" and rows[changed] == "mismatch" and rows[dropped] == "not-bound"
    if absent:
        assert rows[absent[0]] == "absent"
    assert dict(fpmod.diff(lic)) == rows


class _ContainerOs:
    """``os`` as fingerprint.py sees it in a container: "/" is an overlay with no block device,
    and /etc/machine-id, bind-mounted from the host, is on the host's root filesystem."""

    def __init__(self, host_root_dev: int) -> None:
        self.host_root_dev = host_root_dev

    def __getattr__(self, name):
        return getattr(os, name)

    def stat(self, path, *args, **kwargs):
        real = os.stat(path if os.path.exists(path) else "/", *args, **kwargs)
        fields = list(real)
        fields[2] = os.makedev(0, 4242) if path == "/" else self.host_root_dev  # st_dev
        return os.stat_result(fields)


def _fake_sysfs(tmp_path: Path) -> Path:
    """/sys/dev/block/8:1 -> .../sda/sda1 (a partition) of disk sda with serial DISK-SERIAL-1."""
    disk = tmp_path / "devices" / "sda"
    (disk / "sda1").mkdir(parents=True)
    (disk / "sda1" / "partition").write_text("1\n")
    (disk / "serial").write_text("DISK-SERIAL-1\n")
    dev_block = tmp_path / "dev-block"
    dev_block.mkdir()
    (dev_block / "8:1").symlink_to(disk / "sda1")
    return dev_block


def test_root_disk_falls_back_to_the_machine_id_files_device(tmp_path, monkeypatch):
    monkeypatch.setattr(fpmod, "_SYS_DEV_BLOCK", str(_fake_sysfs(tmp_path)))
    monkeypatch.setattr(fpmod, "os", _ContainerOs(os.makedev(8, 1)))
    assert fpmod.root_disk_dir() == str(tmp_path / "devices" / "sda")  # partition -> its disk
    assert fpmod.read_disk_serial() == "DISK-SERIAL-1"


def test_root_disk_is_absent_when_neither_has_a_block_device(tmp_path, monkeypatch):
    monkeypatch.setattr(fpmod, "_SYS_DEV_BLOCK", str(_fake_sysfs(tmp_path)))
    monkeypatch.setattr(fpmod, "os", _ContainerOs(os.makedev(0, 77)))  # e.g. an image's own machine-id
    assert fpmod.root_disk_dir() is None and fpmod.read_disk_serial() is None
