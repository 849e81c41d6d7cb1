"""Recent errors from the deploy's own error.log: every line format that carries a log id, the
code the client saw, newest first, the rotated file, and a bounded read of a large log."""

from __future__ import annotations

import pytest

from visionpack.api.console import errorlog
from visionpack.api.console.errorlog import parse_line, recent_errors

OURS = "2026-01-02 03:04:05,678 [123] {level} visionpack.api: log_id={log_id} {rest}"
GUNICORN = "[2026-01-02 03:04:06 +0000] [124] [INFO] log_id={log_id} {rest}"


@pytest.mark.parametrize(
    "line, route, code, slug, message",
    [
        (
            OURS.format(level="INFO", log_id=1, rest="route=easydl_classify invalid-json body is not valid JSON"),
            "easydl_classify",
            "336002",
            "invalid-json",
            "body is not valid JSON",
        ),
        (
            OURS.format(
                level="INFO", log_id="f00-ba4", rest="route=paddlex_classify invalid-json body is not valid JSON"
            ),
            "paddlex_classify",
            "422",
            "invalid-json",
            "body is not valid JSON",
        ),
        (
            OURS.format(
                level="WARNING",
                log_id=2,
                rest="route=easydl_face_add access-token-invalid peer=10.1.2.3 reason=missing key_id=-",
            ),
            "easydl_face_add",
            "110",
            "access-token-invalid",
            "peer=10.1.2.3 reason=missing key_id=-",
        ),
        (
            OURS.format(
                level="WARNING",
                log_id=3,
                rest="route=metrics no-permission peer=10.1.2.3 reason=scope-ops key_id=ab12cd34",
            ),
            "metrics",
            "6",
            "no-permission",
            "peer=10.1.2.3 reason=scope-ops key_id=ab12cd34",
        ),
        (
            OURS.format(
                level="WARNING",
                log_id=4,
                rest="route=easydl_classify model-unavailable worker already has 8 requests in flight",
            ),
            "easydl_classify",
            "336100",
            "model-unavailable",
            "worker already has 8 requests in flight",
        ),
        (
            OURS.format(level="ERROR", log_id=5, rest="route=easydl_classify internal error: boom"),
            "easydl_classify",
            "336000",
            "internal-error",
            "internal error: boom",
        ),
        (
            OURS.format(level="ERROR", log_id=5, rest="route=paddlex_face_infer internal error: boom"),
            "paddlex_face_infer",
            "500",
            "internal-error",
            "internal error: boom",
        ),
        (
            OURS.format(level="INFO", log_id=6, rest="route=page invalid-argument Not Found: GET '/nope'"),
            "page",
            "336001",
            "invalid-argument",
            "Not Found: GET '/nope'",
        ),
        (
            GUNICORN.format(log_id=7, rest="front: 408 the request body did not arrive in time from 10.1.2.3"),
            "-",
            "408",
            "http-front",
            "the request body did not arrive in time from 10.1.2.3",
        ),
        (
            OURS.format(level="ERROR", log_id=8, rest="front: the app failed"),
            "-",
            "500",
            "internal-error",
            "front: the app failed",
        ),
        (OURS.format(level="INFO", log_id=9, rest="something else"), "-", "?", "-", "something else"),
    ],
)
def test_each_line_format(line, route, code, slug, message):
    e = parse_line(line)
    assert (e.route, e.code, e.slug, e.message) == (route, code, slug, message)
    assert e.time.startswith("2026-01-02 03:04:0") and e.log_id


@pytest.mark.parametrize(
    "line",
    [
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "[2026-01-02 03:04:05 +0000] [1] [INFO] Booting worker with pid: 1",
        "2026-01-02 03:04:05,678 [123] INFO visionpack.access: reloaded access.json: infer open",
        "",
    ],
)
def test_other_lines_are_not_errors(line):
    assert parse_line(line) is None


def test_a_long_message_is_cut():
    e = parse_line(OURS.format(level="INFO", log_id=1, rest="route=r invalid-json " + "x" * 5000))
    assert len(e.message) == errorlog.MAX_MESSAGE + 1 and e.message.endswith("…")


def write(path, ids, junk=False):
    lines = []
    for i in ids:
        lines.append(OURS.format(level="INFO", log_id=i, rest="route=easydl_classify invalid-json bad"))
        if junk:
            lines += ["Traceback (most recent call last):", "  boom"]
    path.write_text("\n".join(lines) + "\n")


def test_newest_first_and_at_most_n(tmp_path):
    write(tmp_path / "error.log", range(10), junk=True)
    got = recent_errors(tmp_path, 3)
    assert [e.log_id for e in got] == ["9", "8", "7"]
    assert [e.log_id for e in recent_errors(tmp_path, 0)] == ["9"]  # at least one
    assert len(recent_errors(tmp_path, 10_000)) == 10


def test_the_rotated_file_fills_up_a_young_log(tmp_path):
    write(tmp_path / "error.log.1", range(0, 5))
    write(tmp_path / "error.log", range(5, 7))
    assert [e.log_id for e in recent_errors(tmp_path, 4)] == ["6", "5", "4", "3"]
    assert [e.log_id for e in recent_errors(tmp_path, 2)] == ["6", "5"]


def test_no_log_yet(tmp_path):
    assert recent_errors(tmp_path / "missing", 5) == []


def test_only_a_bounded_tail_of_a_large_log_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(errorlog, "TAIL_BYTES", 4096)
    write(tmp_path / "error.log", range(2000))
    got = recent_errors(tmp_path, 500)
    assert 0 < len(got) < 100 and got[0].log_id == "1999"
    assert all(e.slug == "invalid-json" for e in got)  # the cut first line is dropped, not misread
