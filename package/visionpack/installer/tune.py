"""``backend: auto`` settled at install/upgrade: every backend measured here, the fastest that agrees kept.

For every backend, one child process in the release's runtime venv (inference/autotune.py) loads
the release's models, checks each against its bundle's parity record (parity.npz, the
tolerance from the manifest) and times it on that sample. Per model the fastest backend that
loaded and agreed is written into the release's config.yml (``tuning``: the choice and every
measurement), which the engine factory reads; a backend that failed or disagreed is never
chosen, and the install log says why. A release's choice is fixed once written: an upgrade
measures its own release, a rollback returns to the old release's config, and ``install.py
tune DEPLOY`` measures again without touching a running release (commands/tune.py).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from .. import bundle as bundles
from . import settings
from .venvs import python_of

BACKENDS = ("paddle", "onnxruntime", "openvino")  # config.BACKENDS (not imported: it needs no PyYAML here)
AUTO = "auto"
# A model stays on the deploy's common backend when that is at most this much slower than its
# fastest: each extra runtime in a worker costs its import (Paddle alone ~400 MiB) and threads
# that compete with the other runtime's, for a gain within the timing noise of a loaded server.
ONE_RUNTIME_MARGIN = 1.10
ONE_RUNTIME_MS = 0.5  # or at most this much slower (sub-millisecond models: MTCNN's R-net and O-net)
# A backend's whole measurement (imports, loads, parity, timing of every model); far above the
# ~5-20 s it takes, so that only a hung runtime hits it.
CHILD_TIMEOUT = 600


def wanted(cfg: Any) -> list[str]:
    """The roles whose backend is the measured one (``auto`` for them)."""
    return [role for role in sorted(cfg.models) if cfg.model_backends.get(role, cfg.backend) == AUTO]


def choice_to_make(path: str | Path) -> str | None:
    """Why a bundle leaves nothing to measure (one format only, or no parity record), else None."""
    if bundles.files(path).onnx_file is None:
        return "no ONNX rendition: it runs on paddle"
    if not (Path(path) / bundles.PARITY_FILE).is_file():
        return f"no {bundles.PARITY_FILE} to check the other backends against: it runs on its own format"
    return None


def measure_backend(venv: Path, release: Path, kind: str, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """inference/autotune.py's answer for ``kind``, or {"why": ...} when the child failed."""
    env = {k: v for k, v in settings.environ().items() if not k.startswith("VISIONPACK_")}
    env["PYTHONPATH"] = str(release / "package")
    with tempfile.TemporaryDirectory(prefix="vp-tune-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [str(python_of(venv)), "-m", "visionpack.inference.autotune", "--config", str(release / "config.yml")]
        cmd += ["--backend", kind, "--out", str(out)]
        try:
            proc = subprocess.run(
                cmd,
                cwd=str(release),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"why": f"measuring {kind} took over {timeout:.0f} s"}
        except OSError as exc:
            return {"why": f"cannot run {cmd[0]}: {exc}"}
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            return {"why": f"its process failed (exit {proc.returncode}): {tail[0][:300]}"}
        try:
            result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        except ValueError as exc:
            return {"why": f"unreadable answer: {exc}"}
    return result


def choose(results: Mapping[str, Mapping[str, Any]], roles: list[str]) -> dict[str, dict[str, Any]]:
    """role -> {"backend": the fastest that loaded and agreed, "candidates": every backend's
    measurements or why not}; a role no backend passed for is left out (its bundle's own format
    then runs it)."""
    out: dict[str, dict[str, Any]] = {}
    every = {role: candidates_of(results, role) for role in roles}
    common = common_backend(every)
    for role, candidates in every.items():
        passed = sorted((c["p50_ms"], kind) for kind, c in candidates.items() if c.get("ok"))
        if not passed:
            continue
        fastest, kind = passed[0]
        record: dict[str, Any] = {"backend": kind, "candidates": candidates}
        slower = candidates[common]["p50_ms"] if common else 0.0
        if common and common != kind and (slower <= fastest * ONE_RUNTIME_MARGIN or slower - fastest <= ONE_RUNTIME_MS):
            record["backend"] = common
            record["note"] = (
                f"{common} is within {ONE_RUNTIME_MARGIN - 1:.0%} or {ONE_RUNTIME_MS} ms of the fastest ({kind}): "
                "the deploy's models stay on one runtime"
            )
        out[role] = record
    return out


def common_backend(every: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The backend that passed for every model with the least total p50, None when none did."""
    kinds = (
        set.intersection(*({k for k, c in cands.items() if c.get("ok")} for cands in every.values()))
        if every
        else set()
    )
    totals = sorted((sum(every[role][k]["p50_ms"] for role in every), k) for k in kinds)
    return totals[0][1] if totals else None


def candidates_of(results: Mapping[str, Mapping[str, Any]], role: str) -> dict[str, Any]:
    """backend -> its measurements of ``role``'s model, or why it has none (its process failed)."""
    return {
        kind: dict((r.get("models") or {}).get(role) or {"ok": False, "why": r.get("why", "no answer")})
        for kind, r in sorted(results.items())
    }


def describe(role: str, record: Mapping[str, Any] | None, candidates: Mapping[str, Any]) -> list[str]:
    """The install log's lines for one role: the choice, then each backend's numbers or why not."""
    chosen = (record or {}).get("backend")
    head = f"tune {role}: {chosen}" if chosen else f"tune {role}: no backend passed; the bundle's own format runs it"
    if record and record.get("note"):
        head += f" ({record['note']})"
    lines = [head]
    for kind, c in sorted(candidates.items()):
        timing = f"p50 {c['p50_ms']:.2f} ms" if "p50_ms" in c else ""
        if c.get("ok"):
            diff = f"max abs diff {c.get('max_abs_diff', 0.0):.2g}"
            lines.append(f"  {kind}: {timing}, {diff}" + (" (chosen)" if kind == chosen else ""))
        else:
            lines.append(f"  {kind}: not chosen: {c.get('why', 'unknown')}" + (f" ({timing})" if timing else ""))
    return lines


def tune(venv: Path, release: Path, cfg: Any, say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Measure every backend for the release's auto roles; role -> record (:func:`choose`)."""
    roles = wanted(cfg)
    if not roles:
        say(f"tune: backend {cfg.backend} is configured; nothing to measure")
        return {}
    skip = {role: choice_to_make(cfg.models[role]) for role in roles}
    for role, why in sorted(skip.items()):
        if why:
            say(f"tune {role}: {why}")
    roles = [role for role in roles if not skip[role]]
    if not roles:
        return {}
    results = {kind: measure_backend(venv, release, kind) for kind in BACKENDS}
    chosen = choose(results, roles)
    for role in roles:
        for line in describe(role, chosen.get(role), candidates_of(results, role)):
            say(line)
    return chosen


def write(release: Path, chosen: Mapping[str, Any]) -> Any:
    """The release's config.yml with ``tuning`` replaced by ``chosen``; the new config."""
    import dataclasses

    from .. import config
    from ..fsutil import atomic_write

    cfg = config.load(release / "config.yml", env={})
    cfg = config.validate(dataclasses.replace(cfg, tuning=dict(chosen)))
    atomic_write(release / "config.yml", config.dump(cfg))
    return cfg


def tune_release(venv: Path, release: Path, cfg: Any, say: Callable[[str], None]) -> Any:
    """Install/upgrade's step: measure, choose, write into the new release; the config it runs with."""
    chosen = tune(venv, release, cfg, say)
    return write(release, chosen) if chosen else cfg
