"""start/start-N.sh.in rendered as a release has it, then run by bash: valid syntax, and its usage
error for an unknown option."""

from __future__ import annotations

import subprocess

from tests.paths import REPO
from visionpack.installer import release


def test_start_script_renders_to_valid_bash(tmp_path):
    text = release.render(
        (REPO / "start" / "start-N.sh.in").read_text(),
        {
            "N": "1",
            "DEPLOY": "demo",
            "VERSION": "1.0.0",
            "RELEASE": "/R/demo/releases/1.0.0",
            "VENV": "/R/.runtime/k",
            "DEPLOY_DIR": "/R/demo",
        },
    )
    script = tmp_path / "start-1.sh"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert 'RELEASE="/R/demo/releases/1.0.0"' in text and "--preload" not in text.replace("Never --preload", "")
    assert "visionpack.api.app:create_app()" in text
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage:" in bad.stderr
