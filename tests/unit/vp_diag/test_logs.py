"""Log scanning: timestamps of gunicorn and logging, recency, tracebacks with their last line."""

from __future__ import annotations

import calendar
import sys
import time

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import logs  # noqa: E402


def test_parse_time_formats():
    t = calendar.timegm((2026, 11, 21, 12, 0, 0))
    assert logs.parse_time("[2026-11-21 12:00:00 +0000] [1] [INFO] x") == t
    assert logs.parse_time("[2026-11-21 13:00:00 +0100] [1] [INFO] x") == t
    assert logs.parse_time("2026-11-21T12:00:00Z something") == t
    assert logs.parse_time("no time here") is None


def test_scan_recent_only_and_traceback_summary():
    now = time.time()
    old = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 90000))
    new = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 60))
    lines = [
        f"[{old} +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:2)",
        "Traceback (most recent call last):",
        '  File "a.py", line 1',
        "KeyError: 'old'",
        f"[{new} +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:3)",
        "Traceback (most recent call last):",
        '  File "a.py", line 1',
        "",
        "RuntimeError: new one",
        f"{new},5 [9] ERROR visionpack.license: license check failed for d/s: expired: x",
        f"[{new} +0000] [1] [ERROR] Worker (pid:4) was sent SIGKILL! Perhaps out of memory?",
    ]
    found = logs.scan(lines, now - 3600)
    assert found["timeout"] == [lines[4]]
    assert found["traceback"] == ["Traceback (most recent call last): ... RuntimeError: new one"]
    assert len(found["license"]) == 1 and len(found["oom"]) == 1


def test_read_tail_drops_the_partial_first_line(tmp_path):
    f = tmp_path / "error.log"
    f.write_text("".join(f"line {i}\n" for i in range(1000)))
    tail = logs.read_tail(f, limit=100)
    assert tail[-1] == "line 999" and all(ln.startswith("line ") for ln in tail) and len(tail) < 20
    assert logs.read_tail(tmp_path / "absent") == []


def test_kernel_oom_pattern_is_about_our_processes():
    pat = logs.KERNEL_OOM
    assert pat.search("Out of memory: Killed process 4242 (gunicorn) total-vm:123kB")
    assert not pat.search("Out of memory: Killed process 4242 (chrome)")


PADDLE_SIGTERM = """--------------------------------------
C++ Traceback (most recent call last):
--------------------------------------
No stack trace in paddle, may be caused by external reasons.

----------------------
Error Message Summary:
----------------------
FatalError: `Termination signal` is detected by the operating system.
  [TimeInfo: *** Aborted at 1795266944 (unix time) try "date -d @1795266944" if you are using GNU date ***]
  [SignalInfo: *** SIGTERM (@0x2d1d) received by PID 11579 (TID 0x7fa26d672b80) from PID 11549 ***]

[2026-11-21 13:15:44 +0000] [11549] [INFO] Worker (pid:11579) was sent SIGTERM!"""


def test_paddle_report_of_a_normal_stop_is_not_a_traceback():
    """gunicorn's SIGTERM makes Paddle print a C++ traceback on every stop (seen in a real error.log)."""
    assert logs.scan(PADDLE_SIGTERM.splitlines(), 0)["traceback"] == []
    segv = PADDLE_SIGTERM.replace("`Termination signal`", "`Segmentation fault`").replace("SIGTERM (@", "SIGSEGV (@")
    found = logs.scan(segv.splitlines(), 0)["traceback"]
    assert found == [
        "C++ Traceback (most recent call last): ... FatalError: `Segmentation fault` is detected by "
        "the operating system."
    ]
