"""The strict JSON body parser: standard JSON only, bounded depth and numbers, no echo."""

from __future__ import annotations

import base64
import json
import os
import random
import time

import pytest

from visionpack.api import jsonbody as J
from visionpack.errors import InvalidArgument, InvalidJson


def reference_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


def random_doc(rng: random.Random, depth: int):
    if depth == 0 or rng.random() < 0.25:
        return rng.choice([1, -2.5, None, True, "", 'a"b', "\\", "\\\\", "[{", "]}", '\\"[', 'x\\\\"]]'])
    if rng.random() < 0.5:
        return [random_doc(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["k", "[", '\\"', "}"]) + str(i): random_doc(rng, depth - 1) for i in range(rng.randint(0, 3))}


def test_depth_scan_agrees_with_the_parsed_structure_on_random_documents():
    rng = random.Random(7)
    for _ in range(2000):
        doc = random_doc(rng, rng.randint(0, 8))
        for raw in (json.dumps(doc), json.dumps(doc, indent=1), json.dumps(doc, ensure_ascii=False)):
            assert J.nesting_depth(raw.encode()) == reference_depth(doc), raw


def test_brackets_and_escapes_inside_strings_do_not_count():
    assert J.nesting_depth(json.dumps({"a": "[" * 500, "b": "\\" * 7 + '"{{{'}).encode()) == 1
    assert J.nesting_depth(b'"' + b'\\"' * 1000) == 0  # unterminated: all of it is a string
    assert J.nesting_depth(b"[" * 40 + b'"' + b"[" * 1000) == 40


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b"[NaN]"])
def test_non_standard_literals_are_invalid_json(raw):
    with pytest.raises(InvalidJson, match="not a JSON value"):
        J.parse_object(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1e400}',
        b'{"a": -1e400}',
        b'{"a": 9223372036854775808}',
        b'{"a": -9223372036854775809}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": [' + b"1" * 100 + b"]}",
    ],
)
def test_unrepresentable_numbers_are_invalid_arguments_with_a_clean_message(raw):
    with pytest.raises(InvalidArgument) as err:
        J.parse_object(raw)
    assert "out of range" in err.value.detail
    assert "set_int_max_str_digits" not in err.value.detail and len(err.value.detail) < 100


def test_the_64_bit_edges_and_tiny_floats_are_accepted():
    body = J.parse_object(b'{"a": 9223372036854775807, "b": -9223372036854775808, "c": 1e-400, "d": 1.5e300}')
    assert body == {"a": 2**63 - 1, "b": -(2**63), "c": 0.0, "d": 1.5e300}


def test_many_siblings_take_the_full_scan_and_pass():
    body = json.dumps({"imageLabelPairs": [{"image": "QUJD", "label": f"[{i}"} for i in range(100)]}).encode()
    assert not J._few_opens(body, J.MAX_DEPTH)
    assert len(J.parse_object(body)["imageLabelPairs"]) == 100


def test_nesting_is_bounded_before_the_parser_recurses():
    ok = b'{"a":' + b"[" * (J.MAX_DEPTH - 1) + b"]" * (J.MAX_DEPTH - 1) + b"}"
    assert J.parse_object(ok)["a"]
    with pytest.raises(InvalidJson, match="nested 33 levels"):
        J.parse_object(b'{"a":' + b"[" * J.MAX_DEPTH + b"]" * J.MAX_DEPTH + b"}")
    for raw in (b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 100_000, b"[" * 4_000_000):
        with pytest.raises(InvalidJson, match="levels deep"):
            J.parse_object(raw)


@pytest.mark.parametrize(
    "raw,cls",
    [
        (b"", InvalidJson),
        (b"{not json", InvalidJson),
        (b"\xff\xfe\x00garbage", InvalidJson),
        (b'{"a": "\xff"}', InvalidJson),
        (b"[1, 2]", InvalidArgument),
        (b'"text"', InvalidArgument),
        (b"null", InvalidArgument),
        (b"3", InvalidArgument),
    ],
)
def test_other_bad_bodies(raw, cls):
    with pytest.raises(cls):
        J.parse_object(raw)


def test_utf16_and_a_byte_order_mark_are_still_read():
    assert J.parse_object(json.dumps({"a": "é"}).encode("utf-16")) == {"a": "é"}
    assert J.parse_object(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_an_error_never_echoes_the_body():
    secret = "S3CRET" * 1000
    for raw in ('{"a": "%s" oops}' % secret, '{"image": "%s", "x": NaN}' % secret, '{"%s": 1e999}' % secret):
        with pytest.raises((InvalidJson, InvalidArgument)) as err:
            J.parse_object(raw.encode())
        assert "S3CRET" not in err.value.detail


def _best_of(fn, n=3) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_the_scan_is_cheap_next_to_parsing_a_4_mb_image_body():
    # Measured on the 2-core dev box, 4 MB of base64: json.loads 4-6 ms, parse_object +0.3 ms
    # (at most 32 '['/'{': memchr calls, no scan), the full scan 10 ms; 4 MB of brackets
    # 70-130 ms. The bounds leave wide room for a loaded CI machine.
    raw = json.dumps({"image": base64.b64encode(os.urandom(3 * 1024 * 1024)).decode(), "top_num": 3}).encode()
    plain = _best_of(lambda: json.loads(raw))
    assert _best_of(lambda: J.parse_object(raw)) < 3 * plain + 0.05
    assert _best_of(lambda: J.nesting_depth(raw)) < 0.5
    hostile = b"[" * (4 * 1024 * 1024)
    assert _best_of(lambda: pytest.raises(InvalidJson, J.parse_object, hostile), n=1) < 2.0
    quotes = b"[" * 40 + b'"\\"' * (1024 * 1024)
    assert _best_of(lambda: J.nesting_depth(quotes), n=1) < 2.0
