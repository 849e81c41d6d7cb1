"""The README's error table is the one errors.py renders: each code documented exactly once."""

from __future__ import annotations

import importlib.util

from visionpack.errors import all_error_classes, error_table


def load_renderer(repo):
    spec = importlib.util.spec_from_file_location("error_table", repo / "tools/docs/error_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_table_is_current(repo):
    mod = load_renderer(repo)
    readme = (repo / "README.md").read_text(encoding="utf-8")
    assert mod.splice(readme) == readme, "run: python3 tools/docs/error_table.py --write"


def test_codes_and_slugs_are_unique():
    rows = error_table()
    slugs = [r["slug"] for r in rows]
    assert len(slugs) == len(set(slugs))
    api = [r["easydl_code"] for r in rows if r["easydl_code"]]
    assert len(api) == len(set(api))
    exits = [r["exit_code"] for r in rows if r["exit_code"] not in (None, 1)]
    assert len(exits) == len(set(exits))


def test_seed_codes_are_all_present():
    codes = {c.easydl_code for c in all_error_classes()}
    assert {336000, 336001, 336002, 336003, 336004, 336005, 336006, 336100, 337000} <= codes
