#!/usr/bin/env python3
"""EasyPack-style installer entry: python3 package/Install/install.py COMMAND ... (see --help)."""

import os
import sys

# Checked before importing the package, whose syntax needs 3.8; kept parseable by old pythons
# so an operator on one gets this sentence instead of a SyntaxError.
if sys.version_info < (3, 8):
    sys.stderr.write(
        "error: install.py needs Python 3.8 or newer; this is %s\n"
        "hint: Run it with python3.8+ (e.g. 'python3.11 package/Install/install.py ...').\n" % sys.version.split()[0]
    )
    sys.exit(10)  # EnvironmentCheckFailed

# package/Install/install.py -> package/, which holds the visionpack package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from visionpack.installer.cli import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
