"""Helpers of download.sh: lock files, fetching the wheelhouse and sources, verifying original/.

Pure standard library on purpose: ``verify`` must run with the system python3 before any venv exists.
The package's standard-library modules (``visionpack.fsutil.sha256_file``) are shared with these
helpers, so ``package/`` is put on the path, after whatever is there: the installer, which loads
``verify`` from a package's tools/, keeps its own ``visionpack``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parents[2] / "package")
if _PACKAGE not in sys.path:
    sys.path.append(_PACKAGE)
