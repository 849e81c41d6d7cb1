"""Helpers of the trouble_shooting tests (no tests here): a real demo-classify install, licenses from the real
vendor tool, and running trouble_shooting.sh as an operator would (system python3, --json)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_installer_fixtures import REPO, free_port, run_installer  # noqa: E402

DIAG = REPO / "trouble_shooting" / "trouble_shooting.sh"
DEPLOY = "demo-classify"
VENDOR_TOOL = REPO / "vendor" / "visionpack_vendor.py"


def load_vendor() -> Any:
    spec = importlib.util.spec_from_file_location("visionpack_vendor_diag_tests", VENDOR_TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Vendor:
    """A throwaway key pair and licenses for THIS machine (or, changed, for another one)."""

    def __init__(self, base: Path) -> None:
        from visionpack.licensing import fingerprint

        self.tool = load_vendor()
        base.mkdir(parents=True, exist_ok=True)
        priv, pub = self.tool.keygen(base / "keys")
        self.key, self.pub = self.tool.load_private_key(priv), pub
        self.request = fingerprint.collect().to_request("diag tests")

    def license(self, now: float | None = None, change: tuple = (), key: Any = None, **kw: Any) -> bytes:
        req = dict(self.request)
        comps = dict(req["components"])
        for name in change:  # what the vendor would issue for another machine
            comps[name] = _other(name)
        req["components"] = comps
        kw.setdefault("instances", 64)
        payload = self.tool.build_payload(req, now=time.time() if now is None else now, **kw)
        return self.tool.sign(payload, key or self.key)


def _other(name: str) -> str:
    from visionpack.licensing import fingerprint

    return fingerprint.component_hash(name, "another-machine")


def run_diag(
    *args: str, env: dict | None = None, script: Path = DIAG, prefix: tuple = (), timeout: float = 300
) -> tuple[int, dict, str]:
    """(exit status, JSON report, stderr) of trouble_shooting.sh --json."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}
    base.update(env or {})
    proc = subprocess.run(
        [*prefix, "bash", str(script), *args, "--json"], capture_output=True, text=True, env=base, timeout=timeout
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None
    return proc.returncode, doc, proc.stderr


def checks(doc: dict) -> list[dict]:
    return [c for g in doc["groups"] for c in g["checks"]]


def find(doc: dict, name: str, deploy: str | None = None, root: Path | None = None) -> dict:
    hits = [
        c
        for c in checks(doc)
        if c["name"] == name
        and (deploy is None or c["deploy"] in (deploy, None))
        and (root is None or c["root"] == str(root))
    ]
    assert hits, f"no check {name!r} in {[c['name'] for c in checks(doc)]}"
    return hits[0]


# Findings about the shared test machine rather than the install under test: other suites'
# processes may have met the OOM killer; that is a true WARN, but not this test's business.
MACHINE_WIDE = {"kernel-oom"}


def not_passing(doc: dict) -> list[str]:
    return [
        f"{c['status']} {c['group']}: {c['name']}: {c['detail']}"
        for c in checks(doc)
        if c["status"] != "PASS" and not (c["name"] in MACHINE_WIDE and c["status"] == "WARN")
    ]


def install_demo(
    root: Path,
    vendor: Vendor,
    port: int | None = None,
    deploy: str = DEPLOY,
    host: str = "0.0.0.0",
    force: bool = False,
) -> int:
    (root / "licenses").mkdir(exist_ok=True)
    (root / "licenses" / vendor.pub.name).write_bytes(vendor.pub.read_bytes())
    if not (root / "licenses" / "license.lic").exists():
        (root / "licenses" / "license.lic").write_bytes(vendor.license())
    port = port or free_port()
    # --force: only for bundles another engineer is rebuilding in this tree (SHA256SUMS lagging
    # behind); the diagnostics check the installed files against their manifests themselves.
    proc = run_installer(
        REPO, root, "install", deploy, "--host", host, "--port", str(port), *(["--force"] if force else [])
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return port
