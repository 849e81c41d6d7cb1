"""gunicorn settings for one visionpack release; every value comes from the release's config.yml.

Started as (install.py does this, and start/start-1.sh for an operator)::

    VISIONPACK_CONFIG=<release>/config.yml PYTHONPATH=<release>/package \\
        <runtime>/bin/gunicorn -c <release>/start/gunicorn_conf.py 'visionpack.api.app:create_app()'

Nothing here may touch Paddle or load a model: the master forks the workers, and a Paddle
predictor created before fork is not safe to use in the children. So no preload_app and no
model work in server hooks; each worker builds its predictor inside create_app(). The one
hook, on_starting, only takes this instance's license slot (docs/licensing.md "Instances").
"""

import os

from visionpack import config as _config

_cfg = _config.load()

_host = f"[{_cfg.host}]" if ":" in _cfg.host else _cfg.host
bind = [f"{_host}:{_cfg.port}"]
workers = _cfg.workers
# Threads only read and refuse requests over max_inflight quickly; inference concurrency is
# bounded per worker by the app, so the CPU is never shared by more predictors than workers.
worker_class = "gthread"
threads = _cfg.http_threads()
timeout = _cfg.timeout
graceful_timeout = _cfg.graceful_timeout
preload_app = False
proc_name = f"visionpack:{_cfg.deploy}"

_run_dir = _cfg.run_dir or "run"
_log_dir = _cfg.log_dir or "logs"
os.makedirs(_run_dir, exist_ok=True)
os.makedirs(_log_dir, exist_ok=True)
pidfile = os.path.join(_run_dir, "gunicorn.pid")
accesslog = os.path.join(_log_dir, "access.log")
errorlog = os.path.join(_log_dir, "error.log")
# Worker prints and native-library warnings land in error.log instead of a closed terminal.
capture_output = True
# The heartbeat file is touched by every worker constantly; keep it off a slow or full disk.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

# Math libraries size their thread pools on first use in each worker; workers x threads must
# not exceed the cores, or throughput drops. Set here so every forked worker inherits it.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = str(_cfg.effective_threads())

# The license instance slot: a flock held for the master's life and inherited by its workers,
# so the kernel frees it when the last of them dies (no cleanup after kill -9).
_slot = None


def on_starting(server):
    """Take a licensed instance slot before any worker is forked; refuse to start without one."""
    global _slot
    if _cfg.run_dir:
        # Worker metric snapshots of the previous run would otherwise be summed again.
        import shutil

        shutil.rmtree(os.path.join(_cfg.run_dir, "metrics"), ignore_errors=True)
    if not _cfg.license_dir:
        return
    from visionpack.errors import LicenseError
    from visionpack.licensing import admin

    try:
        _verdict, _slot = admin.start_instance(_cfg.license_dir, _cfg.deploy, _cfg.service, owner_info={
            "deploy": _cfg.deploy, "service": _cfg.service, "port": _cfg.port, "release": _cfg.release})
    except LicenseError as exc:
        server.log.error("license refused (%s): %s", exc.reason, exc.detail)
        # gunicorn prints a RuntimeError as one line and exits 1, instead of a traceback.
        raise RuntimeError(f"license refused ({exc.reason}): {exc.detail}") from None
