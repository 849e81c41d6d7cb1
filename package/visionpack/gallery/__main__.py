"""``python3 -m visionpack.gallery`` (see gallery/cli.py)."""

from .cli import main

raise SystemExit(main())
