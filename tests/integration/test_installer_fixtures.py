"""Shared fixtures of the installer tests (no tests here; imported by test_installer*.py and e2e).

What is shared and why:
- ``wheelhouse``: the repo's original/wheels + requirements.lock; ``bash download.sh --no-models``
  is run if they are missing (it is idempotent).
- ``source_tree``: a package tree like the repo's, but its ``visionpack.api.app`` is a tiny
  stand-in Flask factory and its catalog offers one deploy ``test-classify`` with a dummy model
  bundle, so process management is tested without Paddle or a real model. ``STANDIN_MODE`` in
  the installer's environment makes the stand-in fail to boot or never become ready.
- ``shared_runtime``: ONE runtime venv per test session, built by the real installer from the
  wheelhouse inside ``unshare -n`` (loopback only), in ``<basetemp>/shared-runtime/.runtime``.
  A test root gets it by a symlink ``<root>/.runtime -> <shared>/.runtime``; the runtime is keyed
  by the lock's hash, so the installer finds it complete and reuses it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = shutil.which("python3") or sys.executable
DEPLOY = "test-classify"

STANDIN_APP = '''
"""Stand-in for visionpack.api.app used by the installer tests (not the product's app)."""
import os
import time

from flask import Flask, jsonify

from visionpack import config


def create_app():
    cfg = config.load()
    mode = os.environ.get("STANDIN_MODE", "")
    if mode == "fail-boot" or (os.environ.get("STANDIN_FAIL_RELEASE") and
                               cfg.release.endswith("/" + os.environ["STANDIN_FAIL_RELEASE"])):
        raise RuntimeError("stand-in told to fail at boot")
    if mode == "second-worker-fails":
        # The first worker boots; any later one fails, which makes gunicorn's master exit.
        try:
            os.close(os.open(os.path.join(cfg.run_dir, "standin-first"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            time.sleep(1)
            raise RuntimeError("stand-in: a second worker fails to boot")
    app = Flask(__name__)
    state = {"ready": mode != "never-ready", "pid": os.getpid()}

    @app.get("/health")
    def health():
        return jsonify(alive=True)

    @app.get("/ready")
    def ready():
        body = {"ready": state["ready"], "deploy": cfg.deploy, "pid": state["pid"],
                "models": dict(cfg.models), "threads": os.environ.get("OMP_NUM_THREADS")}
        return jsonify(body), 200 if state["ready"] else 503

    @app.post(f"/{cfg.deploy}/ImageClassification")
    def classify():
        return jsonify(log_id=int(time.time() * 1000), results=[{"name": "stand-in", "score": 1.0}])

    return app
'''


def traversable(path: Path) -> Path:
    """Let the service user reach ``path``: pytest makes each temp directory 0700, and a root
    installer runs the services as ``visionpack``, which must enter the install root (and the
    shared runtime) like it enters /opt/visionpack. o+x only, and only inside the temp dir."""
    import stat
    import tempfile

    tmp = Path(tempfile.gettempdir()).resolve()
    for d in [path, *path.parents]:
        if d == tmp or tmp not in d.parents:
            break
        mode = stat.S_IMODE(d.stat().st_mode)
        if not mode & 0o001:
            d.chmod(mode | 0o001)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_installer(
    src: Path, root: Path, *args: str, env: dict | None = None, timeout: float = 900, netns: bool = False
) -> subprocess.CompletedProcess:
    """Run install.py of ``src`` with the system python, as an operator would."""
    cmd = [SYSTEM_PYTHON, str(src / "package" / "Install" / "install.py"), "--root", str(root), *args]
    if netns:
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}
    full_env.update(env or {})
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)


def status_json(src: Path, root: Path, deploy: str = DEPLOY) -> dict:
    proc = run_installer(src, root, "status", deploy, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["deploys"][0]


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    original = REPO / "original"
    if (
        not (original / "requirements.lock").is_file()
        or not (original / "wheels").is_dir()
        or not any((original / "wheels").glob("gunicorn-*.whl"))
    ):
        subprocess.run(["bash", str(REPO / "download.sh"), "--no-models"], cwd=REPO, check=True, timeout=3600)
    return original


def make_source_tree(dest: Path, wheelhouse: Path, *, params_bytes: int = 64 << 20) -> Path:
    """A package tree with the stand-in app; big weights make 'kill mid-copy' catchable."""
    pkg = dest / "package"
    shutil.copytree(REPO / "package" / "Install", pkg / "Install")
    shutil.copytree(REPO / "package" / "visionpack", pkg / "visionpack", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "visionpack" / "api").mkdir(exist_ok=True)
    (pkg / "visionpack" / "api" / "__init__.py").write_text('"""Stand-in api package."""\n')
    (pkg / "visionpack" / "api" / "app.py").write_text(STANDIN_APP)
    (pkg / "VERSION").write_text("1.0.0\n")
    shutil.copytree(REPO / "package" / "samples", pkg / "samples")  # upgrade proves a release with cat.jpg
    (pkg / "catalog.yml").write_text(
        "deploys:\n"
        f"  {DEPLOY}:\n    service: classification\n    port: 18701\n"
        "    description: stand-in classifier for installer tests\n"
        "    models:\n      classifier: tiny_bundle\n"
    )
    shutil.copytree(REPO / "start", dest / "start")
    bundle = dest / "models" / "tiny_bundle"
    bundle.mkdir(parents=True)
    (bundle / "inference.json").write_text("{}\n")
    (bundle / "inference.yml").write_text("Global:\n  model_name: tiny\n")
    with open(bundle / "inference.pdiparams", "wb") as fh:
        fh.write(os.urandom(params_bytes))
    (dest / "original").mkdir()
    os.symlink(wheelhouse / "wheels", dest / "original" / "wheels")
    shutil.copy2(wheelhouse / "requirements.lock", dest / "original" / "requirements.lock")
    (dest / "licenses").mkdir()
    return dest


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory, wheelhouse) -> Path:
    return make_source_tree(tmp_path_factory.mktemp("src"), wheelhouse)


@pytest.fixture(scope="session")
def shared_runtime(tmp_path_factory, source_tree) -> Path:
    """<shared>/.runtime holding one complete venv, built offline by ``install --stopped``."""
    shared = tmp_path_factory.getbasetemp() / "shared-runtime"
    shared.mkdir(exist_ok=True)
    traversable(shared)
    if not (shared / ".runtime").is_dir() or not list((shared / ".runtime").glob("*/bin/gunicorn")):
        proc = run_installer(
            source_tree,
            shared,
            "install",
            DEPLOY,
            "--stopped",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            netns=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return shared / ".runtime"


def _run(cmd: list, **kw) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def trial_license(tmp_path_factory, shared_runtime, source_tree) -> tuple[Path, Path]:
    """A throwaway vendor key and a 30-day license for this machine, put in ``source_tree/licenses``.

    Made with the vendor tool and the runtime's python (it has ``cryptography``), outside any
    network namespace, so the fingerprint matches services the tests start. ``install`` copies
    both into ``<root>/licenses`` like it copies a real package's. 64 instances: test roots of
    several sessions may run at once on one machine.
    """
    base = tmp_path_factory.getbasetemp() / "vendor"
    python = next(shared_runtime.glob("*/bin/python"))
    tool = REPO / "vendor" / "visionpack_vendor.py"
    lic = base / "trial.lic"
    if not lic.exists():
        base.mkdir(exist_ok=True)
        _run([python, tool, "keygen", "--out", base / "keys", "--reuse"])
        _run(
            [
                python,
                "-c",
                f"from visionpack.licensing.admin import write_request; write_request({str(base / 'request.json')!r})",
            ],
            env={**os.environ, "PYTHONPATH": str(REPO / "package")},
        )
        _run(
            [
                python,
                tool,
                "issue",
                "--key",
                next((base / "keys").glob("*.key")),
                "--request",
                base / "request.json",
                "--out",
                lic,
                "--days",
                "30",
                "--customer",
                "installer-tests",
                "--instances",
                "64",
            ]
        )
    pub = next((base / "keys").glob("*.pub"))
    shutil.copy2(pub, source_tree / "licenses" / pub.name)
    shutil.copy2(lic, source_tree / "licenses" / "license.lic")
    return pub, lic


def new_root(tmp_path: Path, shared_runtime: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    traversable(root)
    os.symlink(shared_runtime, root / ".runtime")
    return root


def kill_leftovers(root: Path) -> None:
    """Teardown: no gunicorn of a test root may outlive its test."""
    import signal

    # Per-release pid files: an upgrade test may leave two masters (run/<version>/gunicorn.pid).
    for pidfile in list(root.glob("*/run/gunicorn.pid")) + list(root.glob("*/run/*/gunicorn.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            os.killpg(pid, signal.SIGKILL)
        except (ValueError, OSError):
            pass


@pytest.fixture
def root(tmp_path, shared_runtime, trial_license):
    r = new_root(tmp_path, shared_runtime)
    yield r
    kill_leftovers(r)


def post_json(port: int, path: str, doc: dict, timeout: float = 30) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
