"""The per-request license gate: a cached verdict, re-verified when it may have changed.

The hot path is one ``os.stat`` and a few comparisons. A full verification (read,
signature, clock mark, fingerprint rule, dates, scope) runs when the file's identity
(device, inode, size, mtime, ctime) changed, when the cached verdict is older than
``recheck`` seconds, when the clock moved backwards, or when the license just expired.
``install.py lu`` replaces the file by rename, so the next request after the swap sees a
new inode and verifies the new file; the old file stays valid until then, so no request
fails during the swap.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import LicenseError
from .clock import DEFAULT_STATE_DIR, ClockMark
from .fingerprint import Fingerprint, collect
from .license import MAX_BYTES
from .verify import Verdict, check_issued, evaluate, load_public_keys, verify_envelope

log = logging.getLogger("visionpack.license")

RECHECK_SECONDS = 60.0
# Hardware rarely changes; re-reading it every 10 minutes notices a swapped disk without
# running nvidia-smi on every re-verification.
FINGERPRINT_TTL = 600.0

# Optional, not `| None`: this alias is evaluated at import, and the runtime may be CPython 3.9.
_FileKey = Optional[tuple[int, ...]]


@dataclass(frozen=True)
class _State:
    key: _FileKey
    checked_at: float
    verdict: Verdict | None
    error: LicenseError | None


def _file_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class LicenseGate:
    """What every request calls: ``gate.check()`` returns the Verdict or raises LicenseError."""

    def __init__(
        self,
        license_path: str | os.PathLike[str],
        keys_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        deploy: str | None,
        service: str | None,
        clock: Callable[[], float] = time.time,
        recheck: float = RECHECK_SECONDS,
        device: str | None = None,
    ) -> None:
        self.license_path = Path(license_path)
        self.keys_dir = Path(keys_dir)
        self.deploy = deploy
        self.service = service
        self.device = device  # the deploy's cpu | gpu:N: a GPU-bound license licenses one GPU
        self.recheck = recheck
        self.verifications = 0  # full verifications so far (metrics and tests)
        self._clock = clock
        self._mark = ClockMark(state_dir)
        self._lock = threading.Lock()
        self._state: _State | None = None
        self._fp: Fingerprint | None = None
        self._fp_at = 0.0
        self._logged: tuple[Any, ...] | None = None
        self._warned_days: int | None = None

    @classmethod
    def for_service(cls, cfg: Any) -> LicenseGate:
        """The gate of a running service, from its ServiceConfig (``license_dir``, ``deploy``, ``service``,
        ``device``).

        ``license_dir`` is ``<ROOT>/licenses``: ``license.lic`` and the vendor public keys.
        The clock mark is machine-wide (``clock.DEFAULT_STATE_DIR``) so every deploy shares one.
        """
        lic_dir = Path(cfg.license_dir)
        return cls(
            lic_dir / "license.lic",
            lic_dir,
            DEFAULT_STATE_DIR,
            cfg.deploy,
            cfg.service,
            device=getattr(cfg, "device", None),
        )

    # --- hot path ------------------------------------------------------------------------

    def _stat_key(self) -> _FileKey:
        try:
            return _file_key(os.stat(self.license_path))
        except OSError:
            return None

    def _fresh(self, st: _State | None, key: _FileKey, now: float) -> bool:
        if st is None or st.key != key:
            return False
        age = now - st.checked_at
        if not 0 <= age < self.recheck:  # negative age: the clock went back; look now, not in a minute
            return False
        return st.verdict is None or now < st.verdict.expires_at

    def check(self) -> Verdict:
        """The cached verdict, re-verified if stale; raises LicenseError with the precise reason."""
        now = self._clock()
        key = self._stat_key()
        st = self._state
        if not self._fresh(st, key, now):
            with self._lock:
                # Look again after waiting: the thread before us may have just refreshed, and
                # our "now" from before the wait would look like a clock going backwards.
                now, key, st = self._clock(), self._stat_key(), self._state
                if not self._fresh(st, key, now):
                    st = self._refresh(now)
        assert st is not None
        if st.error is not None:
            # A fresh exception per request: one shared instance would collect tracebacks across threads.
            raise LicenseError(st.error.reason, st.error.detail)
        assert st.verdict is not None
        return st.verdict

    def snapshot(self) -> dict[str, Any]:
        """Never raises: what /ready, status and diagnostics show."""
        try:
            verdict = self.check()
        except LicenseError as exc:
            return {"licensed": False, "reason": exc.reason, "detail": exc.detail, "license": None, "days_left": None}
        return {
            "licensed": True,
            "reason": None,
            "detail": None,
            "license": verdict.to_dict(),
            "days_left": verdict.days_left,
        }

    # --- slow path (under the lock) --------------------------------------------------------

    def _fingerprint(self) -> Fingerprint:
        mono = time.monotonic()
        if self._fp is None or mono - self._fp_at >= FINGERPRINT_TTL:
            self._fp, self._fp_at = collect(), mono
        return self._fp

    def _refresh(self, now: float) -> _State:
        key: _FileKey = None
        try:
            try:
                with open(self.license_path, "rb") as fh:
                    # fstat of the descriptor we read: the key always describes the bytes checked.
                    key = _file_key(os.fstat(fh.fileno()))
                    data = fh.read(MAX_BYTES + 1)
            except FileNotFoundError:
                raise LicenseError(
                    "missing",
                    f"no license file at {self.license_path}; "
                    f"run 'install.py lu FILE' with the license from the vendor",
                ) from None
            except OSError as exc:
                raise LicenseError("missing", f"cannot read {self.license_path}: {exc.strerror}") from None
            lic = verify_envelope(data, load_public_keys(self.keys_dir))
            check_issued(lic, now)
            self._mark.check(now, floor=lic.issued_at, witnesses=(self.license_path,))
            verdict = evaluate(lic, self._fingerprint(), now, self.deploy, self.service, self.device)
            state = _State(key, now, verdict, None)
        except LicenseError as exc:
            state = _State(key, now, None, exc)
        self._state = state
        self.verifications += 1
        self._log(state)
        return state

    def _log(self, st: _State) -> None:
        """Once per change of verdict, plus a daily warning in the last week."""
        if st.error is not None:
            sig: tuple[Any, ...] = ("error", st.error.reason)
        else:
            assert st.verdict is not None
            sig = ("ok", st.verdict.license_id, st.verdict.mismatched)
        where = f"{self.deploy or '*'}/{self.service or '*'}"
        if sig != self._logged:
            self._logged = sig
            if st.error is not None:
                log.error("license check failed for %s: %s: %s", where, st.error.reason, st.error.detail)
            else:
                v = st.verdict
                assert v is not None
                log.info(
                    "license %s (%s) valid for %s: %d days left, %d instance(s)",
                    v.license_id,
                    v.customer,
                    where,
                    v.days_left,
                    v.instances,
                )
                for w in v.warnings[1:] if v.expiring_soon else v.warnings:
                    log.warning("%s", w)
                self._warned_days = None  # a new license deserves its own expiry warning
        v = st.verdict
        if v is not None and v.expiring_soon and self._warned_days != v.days_left:
            self._warned_days = v.days_left
            log.warning("%s", v.warnings[0])
