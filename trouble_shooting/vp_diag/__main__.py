"""python3 -m vp_diag (trouble_shooting.sh runs this with -I -S: the standard library only)."""

import sys

from vp_diag.cli import main

sys.exit(main())
