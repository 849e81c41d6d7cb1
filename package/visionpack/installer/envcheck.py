"""Environment check run before install writes anything: each item says what to fix.

Every check is a small function returning a :class:`Check`; :func:`run` collects them and
:func:`raise_for` picks the exit code (the specific one when all failures share it).
"""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import os
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..bundle import files as bundle_files
from ..errors import EnvironmentCheckFailed, InstallerError, ModelInvalid, PackageCorrupt, PortInUse
from .source import SUPPORTED_PYTHONS, Source

GIB = 1 << 30
# The oldest CPython the wheelhouse serves: 3.9's lock is resolved for 3.9.2 (Debian 11's), as
# cryptography >= 44 refuses 3.9.0 and 3.9.1 (tools/download/pipconf.py PATCH_FLOOR).
MIN_PYTHON = (3, 9, 2)
MIN_DISK = 2 * GIB
MIN_MEMORY = 1 * GIB
# Paddle's x86 wheels are compiled for AVX; without it the import dies with SIGILL.
CPU_FLAGS = ("avx",)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    error: type[InstallerError] = EnvironmentCheckFailed
    warn_only: bool = False


def check_python(version: Sequence[int] = sys.version_info[:3]) -> Check:
    shown = ".".join(str(v) for v in version)
    if tuple(version[:3]) < MIN_PYTHON:
        return Check(
            "python",
            False,
            f"Python {shown} is too old (need >= 3.9.2)",
            "Run install.py with CPython 3.9.2 to 3.13, e.g. 'python3.11 package/Install/install.py ...'",
        )
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("ensurepip") is None:
        return Check(
            "python",
            False,
            f"Python {shown} has no working 'venv'/'ensurepip' module",
            "Install the distribution's venv package (Debian/Ubuntu: apt-get install python3-venv)",
        )
    return Check("python", True, f"Python {shown} with venv")


def check_wheel_tags(source: Source, version: Sequence[int] = sys.version_info[:2]) -> Check:
    """The venv is made by this interpreter: the package must carry a lock for its X.Y, and that
    lock must name wheels this interpreter can install."""
    shown = f"{version[0]}.{version[1]}"
    want = f"cp{version[0]}{version[1]}"
    try:
        built = source.pythons()
        lock = source.lock_for(tuple(version))
    except PackageCorrupt as exc:
        return Check("wheel-tags", False, exc.detail, "Run 'bash download.sh --verify'", PackageCorrupt)
    if tuple(version[:2]) not in built:
        names = ", ".join(f"{v[0]}.{v[1]}" for v in built)
        other = (
            f"or ask the vendor for a package built with 'bash download.sh --python {shown}'"
            if tuple(version[:2]) in SUPPORTED_PYTHONS
            else f"CPython {shown} is not supported (README: supported systems)"
        )
        return Check(
            "wheel-tags",
            False,
            f"this package's wheelhouse is for CPython {names}; this python is {shown}",
            f"Run install.py with one of those, e.g. 'python{names.split(', ')[-1]} package/Install/install.py ...'; "
            + other,
        )
    if not lock.is_file():  # the payload check reports it
        return Check("wheel-tags", True, f"no {lock.name} to check (see payload)")
    foreign = sorted(name for name in _locked_files(lock) if not _fits(name, version))
    if foreign:
        return Check(
            "wheel-tags",
            False,
            f"{lock.name} names {len(foreign)} wheel(s) this python ({want}) cannot install: {', '.join(foreign[:3])}",
            "The package is damaged or mixed: use the vendor's package as shipped ('bash download.sh --verify')",
            PackageCorrupt,
        )
    return Check("wheel-tags", True, f"{lock.name} fits CPython {shown}")


def _locked_files(lock: Path) -> list[str]:
    return re.findall(r"#\s*file:\s*(\S+\.whl)", lock.read_text(encoding="utf-8", errors="replace"))


def _fits(wheel: str, version: Sequence[int]) -> bool:
    """A wheel file name whose python/abi tags CPython ``version`` installs: pyN, cpXY with abi
    cpXY, or cpXY-abi3 for any later minor."""
    parts = wheel[:-4].split("-")
    if len(parts) < 5:
        return False
    abis = set(parts[-2].split("."))
    for tag in parts[-3].split("."):
        m = re.fullmatch(r"(cp|py)(\d)(\d*)", tag)
        if not m or int(m.group(2)) != version[0]:
            continue
        minor = int(m.group(3) or 0)
        if m.group(1) == "py" or (minor == version[1] and f"cp{version[0]}{version[1]}" in abis):
            return True
        if "abi3" in abis and minor <= version[1]:
            return True
    return False


def check_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> Check:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return Check("cpu", False, f"cannot read {cpuinfo}: {exc}", "Run on Linux with /proc mounted")
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    missing = [f for f in CPU_FLAGS if f not in flags]
    if missing:
        return Check(
            "cpu",
            False,
            f"CPU lacks {', '.join(missing)} (PaddlePaddle's x86 wheel needs it)",
            "Use an x86-64 CPU with AVX (on a VM, expose the host CPU model, e.g. '-cpu host')",
        )
    return Check("cpu", True, "CPU has " + ", ".join(CPU_FLAGS))


def check_libgomp(find: Callable[[str], str | None] = ctypes.util.find_library) -> Check:
    """PaddlePaddle's wheel links the system's OpenMP runtime; a minimal server may lack it."""
    if find("gomp"):
        return Check("libgomp", True, "libgomp (the OpenMP runtime PaddlePaddle links) is installed")
    return Check(
        "libgomp",
        False,
        "libgomp.so.1 is missing: PaddlePaddle cannot be imported, only the ONNX Runtime and OpenVINO backends load",
        "Debian/Ubuntu: apt-get install libgomp1; RHEL/Rocky: dnf install libgomp",
        warn_only=True,
    )


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_disk(root: Path, statvfs: Callable[[str], os.statvfs_result] = os.statvfs, minimum: int = MIN_DISK) -> Check:
    where = _existing_ancestor(root)
    st = statvfs(str(where))
    free = st.f_bavail * st.f_frsize
    if free < minimum:
        return Check(
            "disk",
            False,
            f"{free / GIB:.1f} GiB free under {where} (need {minimum / GIB:.0f} GiB)",
            "Free space there, or choose another root with --root DIR",
        )
    return Check("disk", True, f"{free / GIB:.1f} GiB free under {where}")


def check_memory(meminfo: Path = Path("/proc/meminfo"), minimum: int = MIN_MEMORY) -> Check:
    try:
        text = meminfo.read_text(encoding="utf-8")
    except OSError as exc:
        return Check("memory", False, f"cannot read {meminfo}: {exc}", "Run on Linux with /proc mounted")
    match = re.search(r"^MemAvailable:\s+(\d+)\s+kB", text, re.M) or re.search(r"^MemFree:\s+(\d+)\s+kB", text, re.M)
    if not match:
        return Check("memory", False, f"{meminfo} has no MemAvailable line", "Run on Linux 3.14 or newer")
    free = int(match.group(1)) * 1024
    if free < minimum:
        return Check(
            "memory",
            False,
            f"{free / GIB:.2f} GiB memory available (need {minimum / GIB:.0f} GiB)",
            "Stop other services or add memory; each worker holds one model",
        )
    return Check("memory", True, f"{free / GIB:.1f} GiB memory available")


def port_free(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound the way gunicorn binds it, else the reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # gunicorn sets SO_REUSEADDR, so TIME_WAIT leftovers must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        sock.close()
    return None


def check_port(host: str, port: int) -> Check:
    reason = port_free(host, port)
    if reason:
        return Check(
            "port",
            False,
            f"cannot bind {host}:{port}: {reason}",
            "Pick another port with --port N, or stop what listens there ('ss -ltnp')",
            PortInUse,
        )
    return Check("port", True, f"{host}:{port} is free")


def check_port_claims(root: Path, deploy: str, port: int) -> Check:
    """A stopped deploy does not hold its port, but starting it later would collide."""
    import json

    from .layout import Root

    owners = []
    for name in Root(root).deploy_names():
        if name == deploy:
            continue
        try:
            state = json.loads((root / name / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and state.get("release") and state.get("port") == port:
            owners.append(name)
    if owners:
        return Check(
            "port-claims",
            False,
            f"port {port} is configured for {', '.join(owners)} in {root}",
            "Pick another port with --port N; two deploys of one root cannot share a port",
            PortInUse,
        )
    return Check("port-claims", True, f"no other deploy in {root} uses port {port}")


def check_payload(source: Source) -> Check:
    missing = [str(p.relative_to(source.top)) for p in (source.lock_file, source.wheels) if not p.exists()]
    if missing:
        return Check(
            "payload",
            False,
            f"missing {', '.join(missing)}",
            "Run 'bash download.sh' on a connected machine and copy the whole directory again",
            PackageCorrupt,
        )
    return Check("payload", True, "original/requirements.lock and original/wheels present")


def check_checksums(
    source: Source, bundles: Sequence[str] | None = None, verify: Callable[[Path], list[Any]] | None = None
) -> Check:
    """verify.py over the whole package; damage in a model bundle this deploy does not use only warns."""
    if verify is None:
        try:
            verify = _load_verify(source)
        except Exception as exc:  # a broken verifier is a damaged package, not a crash of install.py
            return Check(
                "checksums",
                False,
                f"cannot load tools/download/verify.py: {exc!r}",
                "Run 'bash download.sh --verify' to see the problem",
                PackageCorrupt,
            )
        if verify is None:
            return Check(
                "checksums",
                False,
                "tools/download/verify.py is missing; package checksums not verified",
                "Use a complete package",
                PackageCorrupt,
                warn_only=True,
            )
    try:
        problems = list(verify(source.top))
    except Exception as exc:  # a crashing verifier must not be mistaken for a clean package
        return Check(
            "checksums",
            False,
            f"checksum verification crashed: {exc!r}",
            "Run 'bash download.sh --verify' to see the problem",
            PackageCorrupt,
        )
    fix = "Run 'bash download.sh --verify' to list them, then 'bash download.sh' to repair"
    others = [p for p in problems if bundles is not None and _other_bundle(p, bundles)]
    mine = [p for p in problems if p not in others]
    if mine:
        return Check("checksums", False, f"{len(mine)} file(s) damaged or missing: {_shown(mine)}", fix, PackageCorrupt)
    if others:
        return Check(
            "checksums",
            False,
            f"{len(others)} file(s) of model bundles this deploy does not use are damaged or missing: {_shown(others)}",
            fix,
            PackageCorrupt,
            warn_only=True,
        )
    return Check("checksums", True, "package files match their checksums")


def _other_bundle(problem: object, bundles: Sequence[str]) -> bool:
    path = str(getattr(problem, "path", "") or "")
    detail = str(getattr(problem, "detail", "") or "")
    if path.endswith("SHA256SUMS") and detail.startswith("models/"):
        # A sums-file entry that disagrees is about the file it names ("models/<bundle>/x: ...").
        path = detail.split(":", 1)[0]
    parts = path.split("/")
    return len(parts) >= 2 and parts[0] == "models" and parts[1] not in bundles


def _shown(problems: list[Any]) -> str:
    more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
    return "; ".join(_problem_text(p) for p in problems[:10]) + more


def _problem_text(problem: object) -> str:
    # verify.py returns Item(status, kind, path, detail); anything else is shown as it is.
    status, path = getattr(problem, "status", None), getattr(problem, "path", None)
    if status and path:
        detail = getattr(problem, "detail", "")
        return f"{status} {path}" + (f" ({detail})" if detail else "")
    return str(problem)


def _load_verify(source: Source) -> Callable[[Path], list[Any]] | None:
    """tools/download/verify.py's ``verify``, imported the way its docstring says (repo root on the path)."""
    if source.find_verifier() is None:
        return None
    # Import this package's tools/ even if another tree's is cached, and leave sys.modules as found.
    saved = {name: mod for name, mod in sys.modules.items() if name == "tools" or name.startswith("tools.")}
    for name in saved:
        del sys.modules[name]
    top = str(source.top)
    sys.path.insert(0, top)
    try:
        verify: Callable[[Path], list[Any]] = importlib.import_module("tools.download.verify").verify
        return verify
    finally:
        sys.path.remove(top)
        for name in [n for n in sys.modules if n == "tools" or n.startswith("tools.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def check_models(source: Source, bundles: Sequence[str]) -> Check:
    problems = []
    for bundle in bundles:
        d = source.bundle_dir(bundle)
        if not d.is_dir():
            problems.append(f"models/{bundle} is missing")
            continue
        problems += [f"models/{bundle} has no {name}" for name in bundle_files(d).missing()]
    if problems:
        return Check(
            "models",
            False,
            "; ".join(problems),
            "Run 'bash download.sh' to build the demo models, or copy the PaddleX export there",
            ModelInvalid,
        )
    return Check("models", True, f"model bundle(s) present: {', '.join(bundles) or 'none'}")


def check_service_user(root: Path, python: str = sys.executable) -> Check:
    """As root the services run as the user ``visionpack``: it must reach the root and a Python."""
    from . import serviceuser, venvs

    if not serviceuser.is_root():
        return Check(
            "service-user", True, f"services run as {serviceuser.name_of(None)} (install.py is not run as root)"
        )
    ids = serviceuser.lookup()
    who = serviceuser.name_of(ids) if ids else f"{serviceuser.NAME} (created now, uid {serviceuser.UID} if free)"
    where = serviceuser.blocked(root, ids)
    if where is not None:
        return Check(
            "service-user",
            False,
            serviceuser.explain(root, where, ids),
            f"chmod o+x {where}, or choose a root every user can enter with --root DIR",
        )
    try:
        chosen = venvs.service_python(python, say=lambda _msg: None)
    except EnvironmentCheckFailed as exc:
        return Check(
            "service-user",
            False,
            exc.detail,
            "Run install.py with a Python the service user can run, e.g. /usr/bin/python3",
        )
    via = "" if chosen == python else f"; the runtime is built with {chosen}"
    return Check("service-user", True, f"services run as {who}, who can reach {root}{via}")


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and not c.warn_only]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.warn_only]

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            tag = "  OK" if c.ok else ("WARN" if c.warn_only else "FAIL")
            out.append(f"[{tag}] {c.name}: {c.detail}")
            if not c.ok and c.fix:
                out.append(f"       fix: {c.fix}")
        return out


def run(
    source: Source, root: Path, deploy: str, host: str, port: int, bundles: Sequence[str], device: str = "cpu"
) -> Report:
    from . import gpucheck  # driver, CUDA and GPUs for device gpu:N; information only for cpu

    checks = [
        check_python(),
        check_wheel_tags(source),
        check_cpu(),
        check_libgomp(),
        check_disk(root),
        check_memory(),
        check_payload(source),
        check_checksums(source, bundles),
        check_models(source, bundles),
    ]
    checks += [check_port(host, port), check_port_claims(root, deploy, port), check_service_user(root)]
    checks.append(Check(*gpucheck.check(device, source.top)))
    return Report(checks)


def error_for(report: Report) -> InstallerError | None:
    """The error to raise for a failed report: the specific class if every failure shares it."""
    failures = report.failures
    if not failures:
        return None
    kinds = {c.error for c in failures}
    cls = kinds.pop() if len(kinds) == 1 else EnvironmentCheckFailed
    names = ", ".join(c.name for c in failures)
    return cls(f"environment check failed ({names}); fix the items listed above")
