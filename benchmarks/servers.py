"""Servers under test: our gunicorn service and PaddleX's own serving, on loopback ports.

Each :class:`Server` is a process group we start and stop ourselves (SIGTERM to the group,
then SIGKILL after a grace period), with helpers to read its process tree's CPU time and
memory through psutil.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(port: int, path: str, body: bytes, timeout: float = 60.0) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode("utf-8", "replace")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    worker_count: int
    notes: dict[str, Any] = field(default_factory=dict)

    # --- process tree -------------------------------------------------------------------
    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        """gunicorn: the master's children; PaddleX: the single uvicorn process."""
        procs = self.tree()
        if not procs:
            return []
        if self.notes.get("kind") == "gunicorn":
            return procs[0].children()
        return [p for p in procs if _is_python(p)][-1:]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def worker_cpu_seconds(self) -> list[float]:
        out = []
        for p in self.workers():
            try:
                t = p.cpu_times()
                out.append(t.user + t.system)
            except psutil.NoSuchProcess:
                out.append(float("nan"))
        return out

    def memory(self) -> dict[str, Any]:
        """RSS and PSS (MiB) of each worker, plus the master's RSS for gunicorn."""
        rows = []
        for p in self.workers():
            try:
                full = p.memory_full_info()
                rows.append(
                    {
                        "pid": p.pid,
                        "rss_mib": round(full.rss / 2**20, 1),
                        "pss_mib": round(getattr(full, "pss", 0) / 2**20, 1),
                        "uss_mib": round(full.uss / 2**20, 1),
                        "threads": p.num_threads(),
                    }
                )
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        out: dict[str, Any] = {"workers": rows}
        if self.notes.get("kind") == "gunicorn":
            procs = self.tree()
            if procs:
                out["master_rss_mib"] = round(procs[0].memory_info().rss / 2**20, 1)
        return out

    # --- lifecycle ----------------------------------------------------------------------
    def wait_ready(self, path: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log {self.log}:\n{self.tail()}")
            try:
                status, _ = http_get(self.port, path)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; log {self.log}:\n{self.tail()}")

    def wait_workers_loaded(self, timeout: float = 180.0) -> None:
        """Every worker has built its predictor and gone quiet (create_app ends with a warm-up).

        /ready answers from whichever worker accepts first, so with 2 workers it says nothing
        about the other one; memory (a loaded Paddle predictor is >150 MiB, a bare gunicorn
        worker ~30) and a pause in CPU use do.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws = self.workers()
            if len(ws) >= self.worker_count:
                before = self.worker_cpu_seconds()
                time.sleep(0.5)
                after = self.worker_cpu_seconds()
                quiet = all(b - a < 0.05 for a, b in zip(before, after))
                if quiet and all(_loaded(p) for p in ws):
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name}: workers not loaded after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def _is_python(p: psutil.Process) -> bool:
    try:
        return "python" in p.name().lower() or "paddlex" in " ".join(p.cmdline())
    except psutil.NoSuchProcess:
        return False


def _loaded(p: psutil.Process) -> bool:
    try:
        return p.memory_info().rss > 150 * 2**20
    except psutil.NoSuchProcess:
        return False


def gunicorn_conf() -> tuple[Path, str]:
    """The release's start/gunicorn_conf.py when it exists, else our minimal fallback."""
    conf = REPO / "start" / "gunicorn_conf.py"
    if conf.exists():
        return conf, "start/gunicorn_conf.py"
    return BENCH / "gunicorn_fallback_conf.py", "benchmarks/gunicorn_fallback_conf.py"


def start_gunicorn(
    name: str,
    bundle: Path,
    workers: int,
    work: Path,
    extra_cfg: dict[str, Any] | None = None,
    venv: Path = REPO / ".venv",
    package: Path = REPO / "package",
    env_extra: dict[str, str] | None = None,
    conf: Path | None = None,
) -> Server:
    import yaml

    port = free_port()
    d = work / name
    (d / "run").mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(parents=True, exist_ok=True)
    cfg = {
        "deploy": "bench",
        "service": "classification",
        "host": "127.0.0.1",
        "port": port,
        "workers": workers,
        "models": {"classifier": str(bundle)},
        "run_dir": str(d / "run"),
        "log_dir": str(d / "logs"),
    }
    cfg.update(extra_cfg or {})
    (d / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=True))
    conf, conf_label = (conf, str(conf)) if conf is not None else gunicorn_conf()
    env = dict(os.environ, VISIONPACK_CONFIG=str(d / "config.yml"), PYTHONPATH=str(package), **(env_extra or {}))
    log = d / "logs" / "stdout.log"
    # gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default, one path for
    # every instance on the machine; give ours a private one so we never touch another's.
    cmd = [
        str(venv / "bin" / "gunicorn"),
        "-c",
        str(conf),
        "--control-socket",
        str(d / "run" / "gunicorn.ctl"),
        "visionpack.api.app:create_app()",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    srv = Server(
        name,
        port,
        proc,
        d / "logs" / "error.log",
        workers,
        {"kind": "gunicorn", "conf": conf_label, "config": cfg, "package": str(package), "env": env_extra or {}},
    )
    try:
        srv.wait_ready("/ready")
        srv.wait_workers_loaded()
    except Exception:
        srv.stop()
        raise
    return srv


def paddlex_pipeline_yaml(paddlex_python: Path, bundle: Path, model_name: str, out_dir: Path) -> Path:
    """PaddleX's own image_classification pipeline config, pointed at our bundle."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True")
    subprocess.run(
        [
            str(paddlex_python.parent / "paddlex"),
            "--get_pipeline_config",
            "image_classification",
            "--save_path",
            str(out_dir),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    path = out_dir / "image_classification.yaml"
    cfg = yaml.safe_load(path.read_text())
    sub = cfg["SubModules"]["ImageClassification"]
    sub["model_name"] = model_name
    sub["model_dir"] = str(bundle)
    # Without this PaddleX renders a result image and tries to download a font (reference §7).
    cfg["Serving"] = {"visualize": False}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def start_paddlex(
    name: str, paddlex_python: Path, pipeline_yaml: Path, work: Path, env_extra: dict[str, str] | None = None
) -> Server:
    port = free_port()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True", **(env_extra or {}))
    env.pop("PYTHONPATH", None)
    log = d / "paddlex.log"
    cmd = [
        str(paddlex_python),
        str(BENCH / "paddlex_serve.py"),
        "--pipeline",
        str(pipeline_yaml),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    srv = Server(name, port, proc, log, 1, {"kind": "paddlex", "env": env_extra or {}})
    try:
        srv.wait_ready("/health", timeout=300)
    except Exception:
        srv.stop()
        raise
    return srv


def run_loadgen(
    port: int,
    path: str,
    body_file: Path,
    clients: int,
    *,
    warmup: float = 0.0,
    duration: float | None = None,
    requests: int | None = None,
) -> dict[str, Any]:
    """The load generator in its own process (its CPU is its own, visible, and not the server's)."""
    cmd = [
        sys.executable,
        str(BENCH / "loadgen.py"),
        "--port",
        str(port),
        "--path",
        path,
        "--body",
        str(body_file),
        "--clients",
        str(clients),
        "--warmup",
        str(warmup),
    ]
    cmd += ["--duration", str(duration)] if duration else ["--requests", str(requests)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=(duration or 0) + warmup + 600)
    if not proc.stdout.strip():
        raise RuntimeError(f"loadgen failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)
