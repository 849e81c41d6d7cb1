"""Host checks: CPU flags Paddle needs, memory and disk headroom, on real files."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import host  # noqa: E402

CPUINFO = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse sse2 {flags}\n\n"


def test_cpu_flags(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(CPUINFO.format(flags="sse4_2 avx avx2 fma"))
    assert host.cpu_check(f).status == "PASS"
    f.write_text(CPUINFO.format(flags="sse4_2 avx"))
    r = host.cpu_check(f)
    assert r.status == "WARN" and "avx2, fma" in r.detail and r.fix
    f.write_text(CPUINFO.format(flags="sse4_2"))
    r = host.cpu_check(f)
    assert (
        r.status == "FAIL" and "SIGILL" in r.detail and "grep -o -w -E 'avx|avx2|fma|sse4_2' /proc/cpuinfo" in r.fix[0]
    )
    assert host.cpu_check(tmp_path / "missing").status == "FAIL"


def test_this_machine_has_avx():
    assert host.cpu_check().data["missing_required"] == []


def test_memory_headroom(tmp_path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal: 16000000 kB\nMemFree: 100 kB\nMemAvailable: 100000 kB\n")
    r = host.memory_check(f)
    assert r.status == "FAIL" and "free -m" in r.fix
    f.write_text("MemAvailable: 700000 kB\n")
    assert host.memory_check(f).status == "WARN"
    f.write_text("MemAvailable: 8000000 kB\n")
    assert host.memory_check(f).status == "PASS"


def test_disk_headroom(tmp_path):
    def fs(free):
        return lambda path: SimpleNamespace(f_bavail=free // 4096, f_frsize=4096)

    assert host.disk_check(tmp_path, fs(100 << 20)).status == "FAIL"
    r = host.disk_check(tmp_path, fs(1 << 30))
    assert r.status == "WARN" and f"df -h {tmp_path}" in r.fix
    assert host.disk_check(tmp_path / "not" / "yet", fs(10 << 30)).status == "PASS"
    # The real filesystem, with a threshold above what any test machine has free.
    assert host.disk_check(tmp_path, os.statvfs, fail=1 << 60).status == "FAIL"
