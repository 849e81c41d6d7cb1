"""What every command gets: the install root, the package it runs from, and how to talk."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

from .layout import Root
from .source import Source


def _say(msg: str) -> None:
    print(msg, flush=True)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Context:
    root: Root
    source: Source
    say: Callable[[str], None] = field(default=_say)
    warn: Callable[[str], None] = field(default=_warn)
