"""YAML for the installer, which runs on the operator's system python before any venv exists.

The system python may lack PyYAML; the wheelhouse always carries it. PyYAML's pure-Python
part imports straight from the wheel (a zip) whatever the interpreter version, and it falls
back from its C extension by itself, so the installer needs nothing beyond the standard library.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_WHEELS: Path | None = None


def use_wheelhouse(wheels: Path) -> None:
    """Remember where to find a PyYAML wheel if ``import yaml`` fails."""
    global _WHEELS
    _WHEELS = wheels


def _yaml() -> ModuleType:
    try:
        import yaml

        return yaml
    except ImportError:
        pass
    if _WHEELS is not None:
        for wheel in sorted(_WHEELS.glob("[Pp][Yy][Yy][Aa][Mm][Ll]-*.whl")):
            sys.path.append(str(wheel))
            try:
                import yaml

                return yaml
            except ImportError:
                sys.path.remove(str(wheel))
    raise ImportError(
        "PyYAML is neither installed for this python nor present in original/wheels; "
        "run 'bash download.sh' or install python3-yaml"
    )


def ensure_importable() -> None:
    """Make ``import yaml`` work for modules (config.py) that import it themselves."""
    _yaml()


def safe_load(text: str) -> Any:
    yaml = _yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
