"""The one set of field validators every service uses, for request bodies and config options alike.

Each reader takes the mapping, the key and the accepted range, and returns the value or raises
``err`` (``InvalidArgument`` for requests, ``ConfigInvalid`` for ``cfg.options``). Rules shared by
all of them: ``null`` or an absent key means the default; ``true``/``false`` are never numbers
(bool is an int in Python, but ``"top_num": true`` is a client bug); quoted numbers are refused;
every number is range-checked (integers at least to signed 64 bits, so nothing reaches SQLite or
numpy that they cannot hold); and a message shows at most a short, escaped prefix of the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, overload

from ..errors import InvalidArgument, MissingParameter, VisionpackError
from ..imaging import ImageLimits, decode_b64

INT64_MAX = 2**63 - 1
PREVIEW_CHARS = 40


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """An escaped, bounded rendering of a client's value for an error message.

    Strings are cut *before* ``repr`` (a 4 MB string is never copied whole), containers are
    described by size, never rendered: a message stays short whatever the client sent.
    """
    if isinstance(value, str):
        text = repr(value[:limit])
        if len(value) > limit or len(text) > limit + 2:
            text = text[: limit + 1] + "…"
        return text
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return f"an object with {len(value)} key{'s' if len(value) != 1 else ''}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _range(lo: float | None, hi: float | None) -> str:
    return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


# The overloads say what the callers rely on: a default (or required=True) means a value.
@overload
def integer(
    body: Mapping[str, Any],
    key: str,
    default: int,
    lo: int | None = ...,
    hi: int | None = ...,
    err: type[VisionpackError] = ...,
    name: str | None = ...,
) -> int: ...
@overload
def integer(
    body: Mapping[str, Any],
    key: str,
    default: int | None,
    lo: int | None = ...,
    hi: int | None = ...,
    err: type[VisionpackError] = ...,
    name: str | None = ...,
) -> int | None: ...
def integer(
    body: Mapping[str, Any],
    key: str,
    default: int | None,
    lo: int | None = 1,
    hi: int | None = None,
    err: type[VisionpackError] = InvalidArgument,
    name: str | None = None,
) -> int | None:
    """An integer in ``[lo, hi]`` (``hi`` None: up to 2**63-1). An integral float (``3.0``) counts."""
    value = body.get(key)
    if value is None:
        return default
    top = INT64_MAX if hi is None else hi
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not (math.isfinite(value) and value.is_integer()))
        or (lo is not None and value < lo)
        or value > top
    ):
        raise err(f"'{name or key}' must be an integer in {_range(lo, hi)}, got {preview(value)}")
    return int(value)


def number(
    body: Mapping[str, Any],
    key: str,
    lo: float | None = None,
    hi: float | None = None,
    err: type[VisionpackError] = InvalidArgument,
    name: str | None = None,
) -> float | None:
    """A finite number in ``[lo, hi]``, or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise err(f"'{name or key}' must be a number, got {preview(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise err(f"'{name or key}' must be in {_range(lo, hi)}, got {preview(value)}")
    return float(value)


@overload
def boolean(
    body: Mapping[str, Any],
    key: str,
    default: bool,
    err: type[VisionpackError] = ...,
    name: str | None = ...,
) -> bool: ...
@overload
def boolean(
    body: Mapping[str, Any],
    key: str,
    default: bool | None,
    err: type[VisionpackError] = ...,
    name: str | None = ...,
) -> bool | None: ...
def boolean(
    body: Mapping[str, Any],
    key: str,
    default: bool | None,
    err: type[VisionpackError] = InvalidArgument,
    name: str | None = None,
) -> bool | None:
    """``true`` or ``false`` (not 1, not "yes"), or ``default`` when absent."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise err(f"'{name or key}' must be true or false, got {preview(value)}")
    return value


@overload
def int_list(
    body: Mapping[str, Any], key: str, *, required: Literal[True], max_items: int, lo: int = ..., hi: int = ...
) -> list[int]: ...
@overload
def int_list(
    body: Mapping[str, Any], key: str, *, required: bool, max_items: int, lo: int = ..., hi: int = ...
) -> list[int] | None: ...
def int_list(
    body: Mapping[str, Any], key: str, *, required: bool, max_items: int, lo: int = 0, hi: int = INT64_MAX
) -> list[int] | None:
    """A non-empty array of at most ``max_items`` integers, each in ``[lo, hi]``."""
    value = body.get(key)
    if value is None:
        if required:
            raise MissingParameter(f"'{key}' is required")
        return None
    if not isinstance(value, list) or not value or len(value) > max_items:
        raise InvalidArgument(f"'{key}' must be an array of 1..{max_items} integer ids, got {preview(value)}")
    for n, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not lo <= item <= hi:
            raise InvalidArgument(f"{key}[{n}] must be an integer id in {_range(lo, hi)}, got {preview(item)}")
    return list(value)


def required(body: Mapping[str, Any], key: str, what: str | None = None) -> Any:
    """The value of a required field; absent, ``null`` or ``""`` is MissingParameter."""
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value):
        raise MissingParameter(f"'{what or key}' is required")
    return value


def image(value: Any, limits: ImageLimits, what: str = "image") -> Any:
    """A base64 image field decoded to RGB; absent or empty is MissingParameter, a URL 336001."""
    if value is None or (isinstance(value, str) and not value):
        raise MissingParameter(f"'{what}' is required")
    return decode_b64(value, limits, what)
