"""Fuzzing the parser: it returns a License or raises LicenseError, never anything else.

Besides ``parse`` (which has a last-resort net), the un-netted path
``decode_payload(parse_envelope(...))`` is fuzzed too, so a crash cannot hide behind the net.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from visionpack.errors import LicenseError
from visionpack.licensing import license as fmt
from visionpack.licensing.verify import load_public_keys, verify

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def valid(vendor, keypair, request_doc) -> bytes:
    payload = vendor.build_payload(request_doc, now=time.time(), instances=2, deploys="a,b")
    return vendor.sign(payload, keypair[0])


def check(data: bytes) -> None:
    for fn in (fmt.parse, lambda d: fmt.decode_payload(fmt.parse_envelope(d))):
        try:
            assert isinstance(fn(data), fmt.License)
        except LicenseError as exc:
            assert exc.reason in fmt.REASONS


def envelope(data: bytes) -> dict:
    lines = data.decode().strip().splitlines()
    return json.loads(base64.b64decode("".join(lines[1:-1])))


def wrap(obj: object) -> bytes:
    inner = base64.b64encode(json.dumps(obj).encode()).decode()
    return f"{fmt.BEGIN}\n{inner}\n{fmt.END}\n".encode()


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    check(data)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=256))
def test_random_armoured_text(body):
    check(f"{fmt.BEGIN}\n{body}\n{fmt.END}\n".encode())


@FUZZ
@given(data=st.data())
def test_byte_mutations_of_a_valid_license(valid, data):
    buf = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 16))]
        else:
            del buf[pos:]
    check(bytes(buf))


@FUZZ
@given(field=st.sampled_from(["alg", "kid", "payload", "sig"]), value=json_values)
def test_envelope_field_mutations(valid, field, value):
    env = envelope(valid)
    env[field] = value
    check(wrap(env))


@FUZZ
@given(field=st.sampled_from(sorted(fmt._PAYLOAD_KEYS) + ["extra"]), value=json_values)
def test_payload_field_mutations(valid, field, value):
    env = envelope(valid)
    payload = json.loads(base64.b64decode(env["payload"]))
    payload[field] = value
    try:
        raw = fmt.canonical_json(payload)
    except ValueError:
        return
    env["payload"] = base64.b64encode(raw).decode()
    check(wrap(env))


@FUZZ
@given(data=st.data())
def test_verify_on_mutations(valid, keypair, machine, data):
    """The full verifier holds the same contract, with the real key and this machine."""
    keys = load_public_keys(keypair[1])
    buf = bytearray(valid)
    pos = data.draw(st.integers(0, len(buf) - 1))
    buf[pos] ^= data.draw(st.integers(1, 255))
    try:
        verify(bytes(buf), keys, machine, time.time())
    except LicenseError as exc:
        assert exc.reason in fmt.REASONS


def test_valid_survives_the_checker(valid, keypair, machine):
    check(valid)
    assert verify(valid, load_public_keys(keypair[1]), machine, time.time()).instances == 2
