"""gunicorn settings for one visionpack release; every value comes from the release's config.yml.

Started as (install.py does this, and start/start-1.sh for an operator)::

    VISIONPACK_CONFIG=<release>/config.yml PYTHONPATH=<release>/package \\
        <runtime>/bin/gunicorn -c <release>/start/gunicorn_conf.py 'visionpack.api.app:create_app()'

Nothing here may touch Paddle or load a model: the master forks the workers, and a Paddle
predictor created before fork is not safe to use in the children. So no preload_app and no
model work in server hooks; each worker builds its predictor inside create_app(). The hooks
only do bookkeeping: on_starting takes (or, during an upgrade, inherits) this instance's license
slot (docs/licensing.md "Instances"); when_ready serves the listening socket to the next
release's master and post_worker_init keeps a standby release's workers off the public socket
until install.py has proved it healthy (docs/releases.md).
"""

import os

from visionpack import config as _config, handover as _handover, logs as _logs

_cfg = _config.load()
# Files the service creates (gallery, crops, logs, metric snapshots) are not for other users:
# 0640 / 0750 at most. Set here, in the master, so every forked worker has it.
umask = 0o027
os.umask(umask)

_host = f"[{_cfg.host}]" if ":" in _cfg.host else _cfg.host
bind = [f"{_host}:{_cfg.port}"]
workers = _cfg.workers
# Our HTTP front (visionpack.api.front): an event loop reads each request whole, under
# header/body time limits, before one of `threads` request threads runs the app on it, so slow
# or idle clients never hold a thread or an inference slot. The threads only run complete
# requests and refuse those over max_inflight at once (docs/design.md "The HTTP front").
worker_class = "visionpack.api.front.FrontWorker"
threads = _cfg.http_threads()
worker_connections = _cfg.max_connections
keepalive = _cfg.keepalive_timeout
limit_request_field_size = _cfg.max_header_bytes
timeout = _cfg.timeout
graceful_timeout = _cfg.graceful_timeout
preload_app = False
# Off on purpose: with reuse_port, gunicorn 27 gives every worker its own SO_REUSEPORT socket,
# and a closing socket resets the connections queued on it (each worker exit, each upgrade).
# Upgrades hand the one listening socket over instead (visionpack.handover).
reuse_port = False
# gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl):
# every master of every deploy would take it over from the previous one, and a stopping master
# removes the new one's. Nothing here uses it; the installer talks to masters by signals and
# the handover socket.
control_socket_disable = True
proc_name = f"visionpack:{_cfg.deploy}"

# The installer sets run_dir per release (<deploy>/run/<version>), so the masters of two releases
# running side by side during an upgrade have their own pid file and metric snapshots.
_run_dir = _cfg.run_dir or "run"
_log_dir = _cfg.log_dir or "logs"
os.makedirs(_run_dir, exist_ok=True)
os.makedirs(_log_dir, exist_ok=True)
pidfile = os.path.join(_run_dir, "gunicorn.pid")
accesslog = os.path.join(_log_dir, "access.log")
errorlog = os.path.join(_log_dir, "error.log")
# Both rotated by size and shared safely by the master and every worker (visionpack.logs).
logger_class = _logs.gunicorn_logger_class(_cfg.log_max_bytes, _cfg.log_backups)
# Off: capturing dup2()s stdout/stderr onto error.log's descriptor, which rotation cannot follow
# and which wrote every visionpack log line a second time. Native-library output goes to
# logs/console.log, where the installer points the master's stdout/stderr.
capture_output = False
# The heartbeat file is touched by every worker constantly; keep it off a slow or full disk.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

# Math libraries size their thread pools on first use in each worker; workers x threads must
# not exceed the cores, or throughput drops. Set here so every forked worker inherits it.
_config.export_env(
    {name: str(_cfg.effective_threads()) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
)

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
        shutil.rmtree(os.path.join(_cfg.run_dir, "booted"), ignore_errors=True)
    # Taken out of the environment here, so forked workers never see it (the master's business).
    inherited = _config.take_inherited_slot_fd() or _take_standby_request(server)
    if not _cfg.license_dir:
        return
    from visionpack.errors import LicenseError
    from visionpack.licensing import admin

    owner = {"deploy": _cfg.deploy, "service": _cfg.service, "port": _cfg.port, "release": _cfg.release}
    try:
        if inherited:
            # Upgrade/rollback: the old master handed its slot over; checking the license is
            # still ours to do, but the instance is the same one, so it is not counted twice.
            admin.check_for_start(_cfg.license_dir, _cfg.deploy, _cfg.service, device=_cfg.device)
            _slot = _handover.adopt_slot(inherited, owner)
        else:
            _verdict, _slot = admin.start_instance(
                _cfg.license_dir, _cfg.deploy, _cfg.service, owner_info=owner, device=_cfg.device
            )
    except LicenseError as exc:
        server.log.error("license refused (%s): %s", exc.reason, exc.detail)
        # gunicorn prints a RuntimeError as one line and exits 1, instead of a traceback.
        raise RuntimeError(f"license refused ({exc.reason}): {exc.detail}") from None


def _take_standby_request(server):
    """Docker upgrade/rollback: start as a standby master on the old container's socket.

    install.py cannot hand descriptors into a container, so it leaves a request in this
    release's run directory and this master fetches the public listening socket and the
    licence slot from the old container's master itself (handover.release_address: every
    container master is pid 1), adds a private probe listener, and keeps its workers off the
    public socket until the serve-public flag exists, exactly like a process standby. The
    request is deleted before anything else: when Docker restarts this container later, that
    is an ordinary start. Returns the handed-over slot fd, or None.
    """
    import json

    path = os.path.join(_run_dir, _handover.STANDBY_REQUEST)
    try:
        with open(path, encoding="utf-8") as fh:
            req = json.load(fh)
        os.unlink(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot use the standby request {path}: {exc}") from None
    slot = None
    if req.get("from_release"):
        try:
            handed = _handover.fetch(None, addr=_handover.release_address(req["from_release"]))
        except OSError as exc:
            raise RuntimeError(f"cannot take the listening socket over from {req['from_release']}: {exc}") from None
        public = handed.public(_cfg.port)
        if public is None:
            handed.close()
            raise RuntimeError(f"the master of {req['from_release']} has no listener on port {_cfg.port}")
        public_fd = os.dup(public.fileno())
        slot, handed.slot_fd = handed.slot_fd, None
        handed.close()
    else:  # nothing serves: bind the public socket ourselves, still held back until proven
        public_fd = _handover.bind_public(_cfg.host, _cfg.port).detach()
    probe = _handover.bind_probe()
    probe_port = probe.getsockname()[1]
    from gunicorn import sock as _gsock

    # Preset listeners: gunicorn's Arbiter.start() binds nothing when LISTENERS is not empty.
    server.LISTENERS = _gsock.create_sockets(server.cfg, server.log, [public_fd, probe.detach()])
    _config.set_standby_flag(req["flag"])  # read by post_worker_init in every worker
    from visionpack.fsutil import atomic_write

    atomic_write(
        os.path.join(_run_dir, _handover.STANDBY_ANSWER),
        json.dumps({"probe_port": probe_port, "from_release": req.get("from_release")}),
    )
    server.log.info(
        "standby: public socket from %s, probe port %s", req.get("from_release") or "a new bind", probe_port
    )
    return slot


_handover_sock = None


def when_ready(server):
    """Serve our listening sockets (and license slot) to the next release's master."""
    global _handover_sock

    def fds():
        listeners = list(server.LISTENERS)  # empty once the master is stopping
        out = [lst.fileno() for lst in listeners]
        kinds = ["listener"] * len(out)
        if _slot is not None and getattr(_slot, "fd", -1) >= 0:
            out.append(_slot.fd)
            kinds.append("slot")
        header = {
            "pid": os.getpid(),
            "deploy": _cfg.deploy,
            "release": _cfg.release,
            "fds": kinds,
            "listeners": [list(lst.getsockname()) for lst in listeners],
        }
        return out, header

    # A container's master is pid 1 like every other container's: name the address by release.
    addr = _handover.release_address(_cfg.release) if os.getpid() == 1 and _cfg.release else None
    try:
        _handover_sock = _handover.serve(fds, addr)
    except OSError as exc:
        # Without it the next upgrade falls back to stop-then-start; the service itself is fine.
        server.log.warning("cannot serve the listening socket for upgrades: %s", exc)


def post_fork(server, worker):
    # Workers inherit the handover socket with the fork; only the master may answer on it.
    if _handover_sock is not None:
        _handover_sock.close()


def post_worker_init(worker):
    """Give gunicorn back its stop signals; hold a standby release off the public socket."""
    # Paddle's C++ runtime installs its own SIGTERM/SIGINT/SIGQUIT/SIGABRT handlers when the
    # app loads it, replacing gunicorn's: a TERMed worker then aborts mid-request ("Termination
    # signal is detected") instead of finishing what it accepted, which fails requests on every
    # stop, upgrade and rollback. Re-registering gunicorn's handlers restores the graceful stop
    # (Paddle keeps its crash reports for SIGSEGV and friends).
    import signal

    for signum, handler in (
        (signal.SIGTERM, worker.handle_exit),
        (signal.SIGQUIT, worker.handle_quit),
        (signal.SIGINT, worker.handle_quit),
        (signal.SIGABRT, worker.handle_abort),
    ):
        signal.signal(signum, handler)
    signal.siginterrupt(signal.SIGTERM, False)
    # One file per worker whose app (models, warm-up) is loaded: install.py switches traffic to
    # a new release only when every worker is, not just the one that answered /ready first.
    booted = os.path.join(_run_dir, "booted")
    os.makedirs(booted, exist_ok=True)
    open(os.path.join(booted, str(os.getpid())), "w").close()
    if _handover.hold_public(worker, _cfg.port, _config.standby_flag()):
        worker.log.info("standby: not accepting on port %s until %s exists", _cfg.port, _config.standby_flag())
