#!/usr/bin/env python3
"""EasyPack-style installer entry: python3 package/Install/install.py COMMAND ... (see --help)."""

import os
import sys

# package/Install/install.py -> package/, which holds the visionpack package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from visionpack.installer.cli import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
