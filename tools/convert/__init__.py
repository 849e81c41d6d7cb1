"""Build-time model converters (may import paddle; never imported by the visionpack package).

They share the package's own bundle module (file names, checksums) and ``fsutil.sha256_file``, so
``package/`` is put on the path, after whatever is there: a process that already imports a
``visionpack`` keeps it.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parents[2] / "package")
if _PACKAGE not in sys.path:
    sys.path.append(_PACKAGE)
