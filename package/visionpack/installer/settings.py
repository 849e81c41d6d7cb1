"""The installer's own settings from the environment: every variable install.py reads, read here and nowhere else.

Not the service's configuration (config.py: defaults, one config.yml per release, ``VISIONPACK_*``
overrides of its keys, validated once). These belong to one run of install.py and the children
it starts, never to a deploy: they are not in config.yml, and no service sees them
(procs.service_env drops every ``VISIONPACK_*`` variable before a master starts). Kept apart so
that config.py stays the one place for what a deploy runs with, and this one for what the
operator's shell gives the installer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ROOT_ENV = "VISIONPACK_ROOT"  # the install root when --root is not given (layout.resolve_root)
REEXEC_ENV = "VISIONPACK_REEXEC"  # "1": install.py re-ran itself in the runtime venv (commands/license.py)
KILL_ENV = "VISIONPACK_TEST_KILL_AT"  # crash tests only: "<op>:<step>" at which journal.checkpoint() kills


def environ() -> dict[str, str]:
    """A copy of the environment install.py runs in, for the children it starts (each filters it:
    venvs' pip drops PIP_*, procs.service_env every VISIONPACK_*)."""
    return dict(os.environ)


def root(env: Mapping[str, str] | None = None) -> str | None:
    """``$VISIONPACK_ROOT`` (of ``env`` when given), or None."""
    return (os.environ if env is None else env).get(ROOT_ENV) or None


def reexecuted() -> bool:
    """True in the install.py that commands/license.py re-executed in the runtime venv."""
    return os.environ.get(REEXEC_ENV) == "1"


def kill_point() -> str | None:
    """The crash tests' ``<op>:<step>``; None (always, outside them) leaves every checkpoint inert."""
    return os.environ.get(KILL_ENV) or None
