"""Run pip with the user's index settings but without any find-links directory.

The lock and the wheelhouse must come from the package index the user configured (a mirror is fine:
every file is hash-checked), never from a local find-links directory, which may hold private builds
whose hashes exist nowhere else. pip cannot un-set a configured ``find-links``, so we read the
effective configuration once (``pip config list``), keep the index/transport options, and run pip
with every configuration file and ``PIP_*`` variable switched off (``--isolated`` plus
``PIP_CONFIG_FILE=/dev/null``), passing the kept options on the command line.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

# Options carried over from the user's pip configuration. Everything else (find-links, no-index,
# only-binary, constraints, ...) is dropped: our commands spell out what they need.
_VALUE_KEYS = {"index-url", "cert", "client-cert", "proxy", "timeout", "retries", "cache-dir"}
_MULTI_KEYS = {"extra-index-url", "trusted-host"}
_BOOL_KEYS = {"no-cache-dir", "disable-pip-version-check"}
_ALIASES = {"default-timeout": "timeout"}
# Sections pip applies to `pip download` / `pip install`, lowest priority first; env vars win.
_SECTIONS = ("global", "download", "install", ":env:")

TARGET_PYTHON = "3.11"
# pip reads '--python-version 3.9' as 3.9.0, which cryptography >= 44 excludes (Requires-Python
# '!=3.9.0,!=3.9.1'): CPython 3.9 is resolved as 3.9.2, Debian 11's, the oldest the installer accepts.
PATCH_FLOOR = {"3.9": "3.9.2"}


def target_platforms() -> list[str]:
    """manylinux x86_64 tags we accept, most preferred first (glibc 2.28 is our floor)."""
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def target_args(python: str = TARGET_PYTHON) -> list[str]:
    """pip download options selecting CPython ``python`` manylinux x86_64 files whatever machine runs pip."""
    abi = "cp" + python.replace(".", "")
    args = ["--python-version", PATCH_FLOOR.get(python, python), "--implementation", "cp", "--abi", abi]
    for tag in target_platforms():
        args += ["--platform", tag]
    return args


def read_config(python: str = sys.executable) -> dict[str, str]:
    """Effective pip options (key -> raw value) from ``pip config list``."""
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        out = subprocess.run(
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    by_section: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        m = re.match(r"^(?P<section>[^.]+)\.(?P<key>[^=]+)=(?P<val>.*)$", line.strip())
        if not m:
            continue
        try:
            value = ast.literal_eval(m.group("val"))
        except (ValueError, SyntaxError):
            value = m.group("val").strip("'\"")
        key = _ALIASES.get(m.group("key"), m.group("key"))
        by_section.setdefault(m.group("section"), {})[key] = str(value)
    merged: dict[str, str] = {}
    for section in _SECTIONS:
        merged.update(by_section.get(section, {}))
    return merged


def option_args(config: dict[str, str]) -> list[str]:
    """Command-line options equivalent to the kept part of ``config``."""
    args: list[str] = []
    for key in sorted(config):
        value = config[key]
        if key in _VALUE_KEYS and value:
            args += [f"--{key}", value]
        elif key in _MULTI_KEYS:
            for item in value.split():
                args += [f"--{key}", item]
        elif key in _BOOL_KEYS and value.lower() in ("1", "true", "yes", "on"):
            args.append(f"--{key}")
    return args


def pip_env() -> dict[str, str]:
    """Environment for a pip run that reads no configuration file and no PIP_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def pip_command(python: str, subcommand: str, config: dict[str, str]) -> list[str]:
    """``python -m pip --isolated <subcommand> <kept options>``."""
    return [python, "-m", "pip", "--isolated", subcommand, *option_args(config)]


def index_urls(config: dict[str, str], python: str = sys.executable) -> list[str]:
    """Index URLs pip would look in, the primary first."""
    primary = config.get("index-url") or default_index_url(python)
    return [primary, *config.get("extra-index-url", "").split()]


def default_index_url(python: str = sys.executable) -> str:
    """pip's built-in index URL, asked from pip itself rather than written down here."""
    code = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        out = None
    url = out.stdout.strip() if out is not None and out.returncode == 0 else ""
    if not url:
        raise RuntimeError("no index-url configured and pip's default index could not be read")
    return url
