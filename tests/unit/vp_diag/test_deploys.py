"""Journal checks: no operation passes, and deploys are found as the installer lists them (the repair
command for each kind of interrupted operation, against real pids:
tests/integration/vp_diag/test_diag_deploys.py)."""

from __future__ import annotations

import sys

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import deploys  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402


def _check(tmp_path, op):
    ctx = Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    d = Deploy(root=tmp_path, name="d", state={"release": "1.0.0", "operation": op, "service": "classification"})
    return deploys.operation_check(ctx, d)


def test_no_operation_passes(tmp_path):
    assert _check(tmp_path, None).status == "PASS"


def test_deploys_are_found_as_the_installers_layout_lists_them(tmp_path):
    """vp_diag's discovery mirrors layout.Root.deploy_names (reserved and hidden names, state.json)."""
    from visionpack.installer.layout import RESERVED, Root
    from vp_diag import discover

    for name in ("b", "a", ".hidden", *RESERVED, "no-journal"):
        (tmp_path / name).mkdir()
        if name != "no-journal":
            (tmp_path / name / "state.json").write_text("{}")
    assert discover.deploy_names(tmp_path) == Root(tmp_path).deploy_names() == ["a", "b"]
    assert discover.RESERVED == RESERVED
