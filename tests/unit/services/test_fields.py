"""The one set of field validators: ranges, types, defaults, bounded messages."""

from __future__ import annotations

import math

import pytest

from visionpack.errors import ConfigInvalid, ImageSizeInvalid, InvalidArgument, MissingParameter
from visionpack.imaging import ImageLimits
from visionpack.services import fields as F


@pytest.mark.parametrize("value,want", [(None, 7), (1, 1), (3.0, 3), (100, 100)])
def test_integer_accepts_integers_and_integral_floats(value, want):
    assert F.integer({"k": value}, "k", 7, lo=1, hi=100) == want
    assert F.integer({}, "k", 7) == 7


@pytest.mark.parametrize("value", [0, -1, 101, 1.5, "3", True, False, [1], {"a": 1}, math.nan, math.inf, -math.inf])
def test_integer_refuses_everything_else(value):
    with pytest.raises(InvalidArgument, match="'k' must be an integer in"):
        F.integer({"k": value}, "k", 7, lo=1, hi=100)


def test_integer_without_hi_stops_at_64_bits_and_lo_none_is_unbounded():
    assert F.integer({"k": 2**63 - 1}, "k", 0, lo=0) == 2**63 - 1
    for beyond in (2**63, 1e19, 9.3e18):  # floats too: int(1e19) would overflow SQLite
        with pytest.raises(InvalidArgument):
            F.integer({"k": beyond}, "k", 0, lo=0)
    assert F.integer({"k": -5}, "k", 0, lo=None) == -5


def test_number_is_finite_and_in_range():
    assert F.number({"t": 0.5}, "t", 0.0, 1.0) == 0.5
    assert F.number({"t": 1}, "t") == 1.0 and isinstance(F.number({"t": 1}, "t"), float)
    assert F.number({}, "t") is None
    for bad in (math.nan, math.inf, "0.5", True, [0.5], 1.5, -0.1):
        with pytest.raises(InvalidArgument, match="'t' must be"):
            F.number({"t": bad}, "t", 0.0, 1.0)


def test_boolean_is_only_true_or_false():
    assert F.boolean({"v": True}, "v", False) is True
    assert F.boolean({"v": None}, "v", True) is True
    for bad in (1, 0, "yes", "true", [True]):
        with pytest.raises(InvalidArgument, match="'v' must be true or false"):
            F.boolean({"v": bad}, "v", False)


def test_config_options_use_the_same_readers_with_their_own_error_and_name():
    with pytest.raises(ConfigInvalid, match="'options.kpt_batch' must be an integer"):
        F.integer({"kpt_batch": 0}, "kpt_batch", 32, err=ConfigInvalid, name="options.kpt_batch")


def test_int_list():
    assert F.int_list({"ids": [0, 5, 2**63 - 1]}, "ids", required=True, max_items=3) == [0, 5, 2**63 - 1]
    assert F.int_list({}, "ids", required=False, max_items=3) is None
    with pytest.raises(MissingParameter):
        F.int_list({}, "ids", required=True, max_items=3)
    for bad in ([], "1", [1, 2, 3, 4], [-1], [True], [1.0], ["1"], [None], [[1]]):
        with pytest.raises(InvalidArgument):
            F.int_list({"ids": bad}, "ids", required=True, max_items=3)


def test_required_and_image():
    assert F.required({"a": "x"}, "a") == "x"
    for body in ({}, {"a": None}, {"a": ""}):
        with pytest.raises(MissingParameter):
            F.required(body, "a")
    limits = ImageLimits(max_b64_bytes=64)
    with pytest.raises(MissingParameter, match="'photo' is required"):
        F.image("", limits, "photo")
    with pytest.raises(ImageSizeInvalid):
        F.image("A" * 65, limits)
    for url in ("http://192.0.2.1/a.jpg", "https://x/y", "ftp://host/f.png", "file:///etc/passwd", "s3://b/k"):
        with pytest.raises(InvalidArgument, match="URLs are not accepted"):
            F.image(url, limits)


@pytest.mark.parametrize(
    "value,want",
    [
        ("abc", "'abc'"),
        ("x" * 1000, "'" + "x" * 40 + "…"),
        ("\u202e\x00\n", "'\\u202e\\x00\\n'"),
        ("\ud800", "'\\ud800'"),
        (list(range(10**5)), "an array of 100000 items"),
        ([1], "an array of 1 item"),
        ({"a": 1, "b": 2}, "an object with 2 keys"),
        (None, "null"),
        (True, "true"),
        (1.5, "1.5"),
        (2**63 - 1, str(2**63 - 1)),
    ],
)
def test_preview_is_short_and_escaped(value, want):
    out = F.preview(value)
    assert out == want
    assert len(out) <= F.PREVIEW_CHARS + 3


def test_messages_stay_short_whatever_the_value():
    for value in ("x" * 200_000, ["y" * 1000] * 1000, {"k" * 1000: 1}):
        with pytest.raises(InvalidArgument) as err:
            F.integer({"top_num": value}, "top_num", 1)
        assert len(err.value.detail) < 120
