#!/usr/bin/env python3
"""EasyPack-style installer entry: python3 package/Install/install.py COMMAND ... (see --help)."""

import os
import sys

# Checked before importing the package, whose code needs 3.9 (the oldest Python the wheelhouse
# has wheels for); kept parseable by Python 2 (no f-strings, no annotations, ASCII only) so an
# operator who types 'python2 install.py' (EasyDL's instructions do) gets this one line instead of a
# SyntaxError. Exit 10: EnvironmentCheckFailed.
if sys.version_info < (3, 9):
    sys.stderr.write(
        "error: install.py needs CPython 3.9 to 3.13 (this is Python %s): run it as "
        "'python3 package/Install/install.py ...' where python3 is one of them, e.g. python3.11\n"
        % sys.version.split()[0]
    )
    sys.exit(10)

# package/Install/install.py -> package/, which holds the visionpack package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from visionpack.installer.cli import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
