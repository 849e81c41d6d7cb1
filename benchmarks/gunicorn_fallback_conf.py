"""Minimal gunicorn settings, used by the benchmark only when start/gunicorn_conf.py is absent.

Same shape as the release's: gthread workers, no preload (each worker builds its predictor
after fork), math-library threads split so workers x threads never exceed the cores.
"""

import os

from visionpack import config as _config

_cfg = _config.load()
bind = [f"{_cfg.host}:{_cfg.port}"]
workers = _cfg.workers
worker_class = "gthread"
threads = _cfg.http_threads()
timeout = _cfg.timeout
preload_app = False
errorlog = os.path.join(_cfg.log_dir or ".", "error.log")
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = str(_cfg.effective_threads())
