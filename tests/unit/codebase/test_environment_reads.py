"""The environment is read in one module of the service (config.py) and one of the installer (installer/settings.py).

Scanned with ast, so child code held in strings (installer/procs.py's launcher) does not count:
any ``os.environ``, ``os.environb``, ``os.getenv``, ``os.putenv``, ``os.unsetenv`` or a name
imported from ``os`` as one of those, anywhere else in the package or in the service's gunicorn
config (start/gunicorn_conf.py), fails.
"""

from __future__ import annotations

import ast

from tests.paths import REPO

PACKAGE = REPO / "package" / "visionpack"
ALLOWED = {PACKAGE / "config.py", PACKAGE / "installer" / "settings.py"}
NAMES = {"environ", "environb", "getenv", "putenv", "unsetenv"}


def reads(source: str, name: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            out.append(f"{name}:{node.lineno}: os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in NAMES for a in node.names):
            out.append(f"{name}:{node.lineno}: from os import {', '.join(a.name for a in node.names)}")
    return out


def test_only_config_and_the_installer_settings_read_the_environment():
    files = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    found = []
    for path in [*files, REPO / "start" / "gunicorn_conf.py"]:
        if path not in ALLOWED:
            found += reads(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert found == []
    assert all(reads(p.read_text(encoding="utf-8"), p.name) for p in ALLOWED)  # the scan sees them there


def test_the_scan_finds_every_form():
    src = (
        "import os\nfrom os import getenv\nos.environ['A'] = '1'\nx = os.getenv('B')\nos.putenv('C', '')\n"
        "code = \"os.environ['LISTEN_FDS'] = '1'\"\n"
    )
    assert sorted(int(r.split(":")[1]) for r in reads(src, "x.py")) == [2, 3, 4, 5]
