"""visionpack.logs: one file shared by several processes, rotated by size without losing lines."""

from __future__ import annotations

import multiprocessing

from tests.unit.test_logs import _all_lines, _write_lines


def test_four_processes_share_one_rotating_file_and_lose_no_line(tmp_path):
    path = tmp_path / "error.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_lines, args=(str(path), f"p{k}", 500, 20_000, 50)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = _all_lines(path)
    assert len(lines) == 2000 and len(set(lines)) == 2000  # every line once, none torn
    assert all(len(ln.split()) == 3 for ln in lines)
    sizes = [f.stat().st_size for f in tmp_path.glob("error.log*") if not f.name.endswith(".lock")]
    assert len(sizes) > 5 and max(sizes) < 20_000 + 200
