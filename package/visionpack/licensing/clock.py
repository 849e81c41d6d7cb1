"""Clock high-water mark: the latest time this machine has been seen at, so setting the clock
back to stretch an expiring license is noticed.

Design (docs/licensing.md "Clock"):

* Two copies, ``clock.mark`` and ``.clock.mark.2`` in the state directory, each written
  atomically and carrying ``HMAC(machine secret, high)``. The secret is derived from the
  raw machine id, which never leaves this machine (licenses and requests carry only salted
  hashes), so a mark edited by hand or copied from another machine does not verify.
* One copy bad or missing: the other is trusted and both are rewritten. Both present
  and neither verifies: tampering, ``clock-rollback`` until an operator deletes them.
* Both missing (first start, or deleted): the mark is rebuilt conservatively as the
  latest of the license's signed ``issued_at`` and the *ctime* of witness files (the
  installed license). A ctime is stamped by the kernel from the clock at the moment of
  the change and cannot be set by ``touch``, so deleting the mark after winding the clock
  back still shows that time once went further.

This is deterrence against casual clock games, not protection from root: root can
read the machine id and forge a mark. The threat model is the same as EasyDL's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import LicenseError
from ..fsutil import atomic_write
from . import fingerprint
from .license import MAX_CLOCK_DRIFT, format_time

log = logging.getLogger("visionpack.license")

# Rewrite at most once a minute: each write is two fsyncs, and a finer mark buys nothing.
WRITE_STEP = 60
MARK_NAMES = ("clock.mark", ".clock.mark.2")
DEFAULT_STATE_DIR = Path("/var/lib/visionpack/state")
STATE_DIR_MODE = 0o3770
MARK_MODE = 0o640


def _machine_secret() -> bytes:
    raw = fingerprint.read_machine_id() or fingerprint.read_dmi("product_uuid") or fingerprint.read_disk_serial() or ""
    return hashlib.sha256(b"visionpack/clock/v1\n" + raw.encode("utf-8")).digest()


class ClockMark:
    """The high-water mark kept in ``state_dir``."""

    def __init__(self, state_dir: str | os.PathLike[str], drift: int = MAX_CLOCK_DRIFT) -> None:
        self.state_dir = Path(state_dir)
        self.paths = tuple(self.state_dir / name for name in MARK_NAMES)
        self.drift = drift
        self._secret = _machine_secret()
        self._warned_write = False

    def _mac(self, high: int) -> str:
        return hmac.new(self._secret, f"visionpack-clock/v1|{high}".encode(), hashlib.sha256).hexdigest()

    def encode(self, high: int) -> bytes:
        return json.dumps({"v": 1, "high": high, "mac": self._mac(high)}, sort_keys=True).encode()

    def _owner_for_root(self) -> tuple[int, int] | None:
        """Root (the installer) writes marks in the service user's directory as that user's:
        the service must be able to replace them, and a sticky directory lets only a file's
        owner (or the directory's) do that."""
        if os.geteuid() != 0:
            return None
        st = os.stat(self.state_dir)
        return (st.st_uid, st.st_gid) if st.st_uid != 0 else None

    def _read_one(self, path: Path) -> int | str:
        """The mark's value, or "missing" / "bad"."""
        try:
            with open(path, "rb") as fh:
                data = fh.read(4096)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            # Unreadable for this user is not evidence of tampering; the other copy, the
            # license's issue time and the witnesses still bound the clock.
            return "missing"
        except OSError:
            return "bad"
        try:
            doc = json.loads(data)
            high = doc["high"]
            if (
                set(doc) == {"v", "high", "mac"}
                and doc["v"] == 1
                and type(high) is int
                and isinstance(doc["mac"], str)
                and hmac.compare_digest(doc["mac"], self._mac(high))
            ):
                return high
        except (ValueError, KeyError, TypeError):
            pass
        return "bad"

    def read(self) -> tuple[int | None, list[str]]:
        """(high or None, state of each copy). Raises clock-rollback when every copy is forged."""
        states = [self._read_one(p) for p in self.paths]
        highs = [s for s in states if isinstance(s, int)]
        labels = [str(s) if isinstance(s, str) else "ok" for s in states]
        if not highs and "bad" in labels:
            raise LicenseError(
                "clock-rollback",
                f"clock mark in {self.state_dir} was altered (it does not verify on "
                f"this machine); restore the clock, then delete {self.paths[0].name} "
                f"and {self.paths[1].name} to rebuild it",
            )
        return (max(highs) if highs else None), labels

    def check(self, now: float, floor: float = 0, witnesses: Iterable[str | os.PathLike[str]] = ()) -> int:
        """Raise clock-rollback if ``now`` is more than the drift behind the mark; else advance it.

        ``floor`` (a signed issued_at) and the ctimes of ``witnesses`` bound the mark from below.
        Returns the mark after the check.
        """
        high, labels = self.read()
        rebuilt = high is None
        lower = int(floor)
        for path in witnesses:
            try:
                lower = max(lower, int(os.stat(path).st_ctime))
            except OSError:
                pass
        if high is None:  # rebuilt
            if lower:
                # INFO: a first start looks exactly like a deleted mark, and first starts are normal.
                log.info(
                    "clock mark missing in %s; rebuilt from the license and file times (%s)",
                    self.state_dir,
                    format_time(lower),
                )
            high = lower
        else:
            high = max(high, lower)
        if now < high - self.drift:
            raise LicenseError(
                "clock-rollback",
                f"system clock {format_time(now)} is {(high - now) / 60:.0f} min behind "
                f"the last time seen {format_time(high)}; set the clock right (NTP)",
            )
        new_high = max(high, int(now))
        if not rebuilt and labels.count("ok") < len(labels):
            log.warning("clock mark copies in %s: %s; repairing from the good copy", self.state_dir, ", ".join(labels))
        if rebuilt or labels.count("ok") < len(labels) or new_high >= high + WRITE_STEP:
            self._write(new_high)
        return new_high

    def _write(self, high: int) -> None:
        data = self.encode(high)
        try:
            if not self.state_dir.is_dir():
                self.state_dir.mkdir(parents=True, exist_ok=True)
                # Normally made by the root installer for the service user and its group
                # (installer/filemodes.py): setgid, sticky (no group member replaces another's
                # mark), nothing for others. Integrity comes from the HMAC, not from secrecy.
                os.chmod(self.state_dir, STATE_DIR_MODE)
            owner = self._owner_for_root()
            for path in self.paths:
                atomic_write(path, data, mode=MARK_MODE)
                if owner is not None:
                    os.chown(path, *owner, follow_symlinks=False)
        except OSError as exc:
            # Failing requests because /var is full would punish the honest customer; say it once.
            if not self._warned_write:
                log.warning(
                    "cannot write clock mark in %s (%s); clock rollback detection is weakened", self.state_dir, exc
                )
                self._warned_write = True
