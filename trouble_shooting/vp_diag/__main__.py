"""python3 -m vp_diag (trouble_shooting.sh runs this with -I -S: the standard library only)."""

import sys

from vp_diag.cli import main

if __name__ == "__main__":
    sys.exit(main())
