"""tests/unit/inference: the shared unit fakes (tests/unit/fakes.py) live one level up."""

from __future__ import annotations

import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[1]
if str(UNIT) not in sys.path:
    sys.path.insert(0, str(UNIT))
