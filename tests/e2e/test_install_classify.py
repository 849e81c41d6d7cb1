"""The operator's path end to end, with no network at all: license, install, classify a photo, stop.

Everything runs inside ``unshare -n`` (a network namespace whose only interface is loopback):
the fingerprint request, issuing a trial license with the vendor tool, ``install.py install``
of the real ``demo-classify`` deploy from this repository (environment check, release, real
gunicorn + Paddle + EfficientNet-Lite0), a classification request over loopback, status, stop.

The runtime venv is the session's shared one (tests/integration/test_installer_fixtures.py):
it was itself built by ``install.py`` from original/wheels inside ``unshare -n``; this root
reaches it through ``<root>/.runtime -> <shared>/.runtime`` (same lock file, same key).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_installer_fixtures import (  # noqa: E402,F401
    REPO,
    SYSTEM_PYTHON,
    free_port,
    kill_leftovers,
    new_root,
    shared_runtime,
    source_tree,
    wheelhouse,
)

DEPLOY = "demo-classify"
BUNDLE = REPO / "models" / "efficientnet_lite0_imagenet"

CLIENT = r"""
import base64, json, sys, urllib.request
port, deploy, path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
body = json.dumps({"image": base64.b64encode(open(path, "rb").read()).decode(), "top_num": 5}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/{deploy}/ImageClassification", data=body,
                             headers={"Content-Type": "application/json"})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
open(out, "wb").write(opener.open(req, timeout=120).read())
"""

SCRIPT = r"""
set -euo pipefail
ip link set lo up
ip -o link show | awk -F': ' '{print $2}' > "$WORK/links.txt"
# vendor side (its own machine in real life): key pair, then a 30-day trial for this fingerprint
"$RPY" "$REPO/vendor/visionpack_vendor.py" keygen --out "$WORK/vendor"
PYTHONPATH="$REPO/package" "$RPY" -c "from visionpack.licensing.admin import write_request; write_request('$WORK/request.json')"
"$RPY" "$REPO/vendor/visionpack_vendor.py" issue --key "$(ls "$WORK"/vendor/*.key)" --request "$WORK/request.json" \
    --out "$WORK/trial.lic" --days 30 --customer e2e --instances 64
mkdir -p "$ROOT/licenses"
cp "$WORK"/vendor/*.pub "$ROOT/licenses/"
cp "$WORK/trial.lic" "$ROOT/licenses/license.lic"
# operator side
"$SYSPY" "$REPO/package/Install/install.py" --root "$ROOT" install demo-classify --host 127.0.0.1 --port "$PORT"
"$SYSPY" "$WORK/client.py" "$PORT" demo-classify "$WORK/chelsea.jpg" "$WORK/answer.json"
"$SYSPY" "$REPO/package/Install/install.py" --root "$ROOT" status demo-classify --json > "$WORK/status.json"
"$SYSPY" "$REPO/package/Install/install.py" --root "$ROOT" stop demo-classify
"""  # noqa: E501  (a shell line of the script)


@pytest.fixture(scope="module")
def demo_models(wheelhouse):
    if not (BUNDLE / "manifest.json").is_file():
        subprocess.run(["bash", str(REPO / "download.sh")], cwd=REPO, check=True, timeout=3600)
    return BUNDLE


def chelsea_jpeg(path: Path) -> None:
    import cv2
    from skimage import data

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    path.write_bytes(buf.tobytes())


def test_offline_install_and_classify_a_cat(tmp_path, shared_runtime, demo_models):
    root = new_root(tmp_path, shared_runtime)
    work = tmp_path / "work"
    work.mkdir()
    chelsea_jpeg(work / "chelsea.jpg")
    (work / "client.py").write_text(CLIENT)
    runtime_python = next(shared_runtime.glob("*/bin/python"))
    port = free_port()
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "REPO": str(REPO),
        "ROOT": str(root),
        "WORK": str(work),
        "PORT": str(port),
        "RPY": str(runtime_python),
        "SYSPY": SYSTEM_PYTHON,
    }
    try:
        proc = subprocess.run(
            ["unshare", "-n", "bash", "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
        )
    finally:
        kill_leftovers(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert (work / "links.txt").read_text().split() == ["lo"], "the namespace had more than loopback"
    assert "--no-index" in (shared_runtime / "install.log").read_text()
    answer = json.loads((work / "answer.json").read_text())
    assert isinstance(answer["log_id"], int) and len(answer["results"]) == 5
    top = answer["results"][0]
    assert "cat" in top["name"] and top["score"] > 0.2, answer
    names = [r["name"] for r in answer["results"][:3]]
    assert {"tabby, tabby cat", "tiger cat", "Egyptian cat"} & set(names), answer
    st = json.loads((work / "status.json").read_text())["deploys"][0]
    assert (st["state"], st["ready"], st["release"], st["port"]) == ("running", True, "1.0.0", port)
    assert "demo-classify stopped" in proc.stdout
    assert not (root / DEPLOY / "run" / "gunicorn.pid").exists()
