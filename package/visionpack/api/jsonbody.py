"""Strict JSON request bodies: standard JSON only, bounded depth and numbers, errors that echo nothing.

Python's ``json`` accepts ``NaN``/``Infinity``, turns ``1e400`` into ``inf``, parses integers of
any length (and fails on huge ones with a message about ``sys.set_int_max_str_digits``), and
recurses once per nesting level (``RecursionError`` at about 10^3). Every one of those reached an
internal error once. Here:

* ``NaN``, ``Infinity``, ``-Infinity`` are not JSON (RFC 8259): :class:`InvalidJson` (336002).
* Nesting deeper than :data:`MAX_DEPTH` is :class:`InvalidJson`, found by a scan of the raw bytes
  *before* the parser runs (strings are cut out first, so brackets inside them do not count).
* Numbers the service cannot represent -- integers outside signed 64 bits, floats that overflow
  to infinity -- are valid JSON syntax but out of range: :class:`InvalidArgument` (336001).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import InvalidArgument, InvalidJson

MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# 19 digits hold every int64; a sign and one spare digit let the exact range check decide.
_MAX_INT_CHARS = 21

# The depth scan works on a skeleton of the body: escaped backslashes, then escaped quotes are
# cut (left to right, as JSON reads escapes), then everything but quotes and brackets. A bracket
# then lies inside a string exactly when an odd number of quotes precede it. Each step is a
# C-level or numpy pass, so the scan is linear and fast however hostile the body (in UTF-8 the
# bytes '"', backslash and the brackets never occur inside a multi-byte character).
_DROP = bytes(b for b in range(256) if b not in b'"[]{}')
_SMALL = 256  # skeletons up to this size are walked in Python; numpy costs more to start


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or the documented error; never another exception."""
    data = _utf8(raw)
    # No more opening brackets than the bound (every request with one image) cannot nest past
    # it: a few memchr calls then replace the scan.
    if not _few_opens(data, MAX_DEPTH) and (depth := nesting_depth(data)) > MAX_DEPTH:
        raise InvalidJson(f"body is nested {depth} levels deep; at most {MAX_DEPTH} are accepted")
    try:
        body = json.loads(data, parse_constant=_no_constant, parse_int=_int, parse_float=_float)
    except json.JSONDecodeError as exc:
        # Its message names a position, never the input itself.
        raise InvalidJson(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson("body is not valid UTF-8 JSON") from None
    except RecursionError:  # unreachable after the depth scan; kept so a bug stays a 336002
        raise InvalidJson("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidArgument(f"the JSON body must be an object, got {json_type(body)}")
    return body


def _few_opens(data: bytes, limit: int) -> bool:
    """True when ``data`` holds at most ``limit`` '[' and '{' in all (bytes.find is memchr:
    ~1 ms for 4 MB, where bytes.count takes several)."""
    seen = 0
    for ch in (b"[", b"{"):
        pos = data.find(ch)
        while pos != -1:
            seen += 1
            if seen > limit:
                return False
            pos = data.find(ch, pos + 1)
    return True


def nesting_depth(data: bytes) -> int:
    """Deepest bracket nesting outside strings (linear: tens of ms for 4 MB of brackets)."""
    skeleton = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    if len(skeleton) <= _SMALL:
        level = deepest = 0
        inside = False
        for b in skeleton:
            if b == 0x22:  # '"'
                inside = not inside
            elif not inside:
                level += 1 if b in b"[{" else -1
                deepest = max(deepest, level)
        return deepest
    import numpy as np

    chars = np.frombuffer(skeleton, np.uint8)
    quote = chars == 0x22
    outside = ~quote & (np.cumsum(quote) % 2 == 0)
    opens = (chars == 0x5B) | (chars == 0x7B)
    levels = np.cumsum(np.where(opens, 1, -1)[outside], dtype=np.int64)
    return int(levels.max(initial=0))


def _utf8(raw: bytes) -> bytes:
    # json.loads(bytes) reads UTF-8/16/32 by sniffing; the depth scan needs UTF-8, so others
    # are recoded once (they are rare: RFC 8259 asks for UTF-8).
    encoding = json.detect_encoding(raw)
    if encoding == "utf-8":
        return raw
    try:
        return raw.decode(encoding).encode("utf-8")
    except UnicodeError:
        raise InvalidJson(f"body is not valid {encoding}") from None


def _no_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON value (send a finite number or null)")


def _int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise InvalidArgument(f"an integer of {len(text.lstrip('-'))} digits is out of range (64-bit integers only)")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidArgument("an integer is out of range (64-bit integers only)")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidArgument("a number is out of range (it overflows a 64-bit float)")
    return value


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages that must not echo the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
