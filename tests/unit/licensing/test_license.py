"""The license file format: armour, envelope, canonical payload, strict types."""

from __future__ import annotations

import base64
import json

import pytest

from visionpack.errors import LicenseError
from visionpack.licensing import license as fmt


def unwrap(data: bytes) -> dict:
    lines = data.decode().strip().splitlines()
    return json.loads(base64.b64decode("".join(lines[1:-1])))


def rewrap(env: dict) -> bytes:
    inner = base64.b64encode(json.dumps(env).encode()).decode()
    return f"{fmt.BEGIN}\n{inner}\n{fmt.END}\n".encode()


def payload_of(data: bytes) -> dict:
    return json.loads(base64.b64decode(unwrap(data)["payload"]))


def with_payload(data: bytes, payload_bytes: bytes) -> bytes:
    env = unwrap(data)
    env["payload"] = base64.b64encode(payload_bytes).decode()
    return rewrap(env)


def reason(data: object) -> str:
    with pytest.raises(LicenseError) as exc:
        fmt.parse(data)  # type: ignore[arg-type]
    return exc.value.reason


def test_roundtrip_fields(issue, request_doc):
    data = issue(days=30, customer="ACME", deploys="a,b", services="classification", instances=3)
    lic = fmt.parse(data)
    assert data.startswith(fmt.BEGIN.encode()) and data.rstrip().endswith(fmt.END.encode())
    assert max(len(line) for line in data.splitlines()) <= 76
    assert lic.customer == "ACME" and lic.deploys == ("a", "b") and lic.services == ("classification",)
    assert lic.instances == 3 and lic.binding == {"type": "machine"}
    assert lic.expires_at - lic.not_before == 30 * 86400
    assert lic.components == {k: v for k, v in request_doc["components"].items() if v}
    assert "machine_id" in lic.required and lic.min_match == min(3, len(lic.components))
    assert lic.envelope.alg == "ed25519" and len(lic.kid) == 16


def test_star_means_everything(issue):
    lic = fmt.parse(issue())
    assert lic.deploys is None and lic.services is None


def test_payload_is_canonical_json(issue):
    env = unwrap(issue())
    raw = base64.b64decode(env["payload"])
    assert raw == fmt.canonical_json(json.loads(raw))
    assert b" " not in raw.replace(b"test customer", b"")


def test_signature_domain_separated(issue):
    env = fmt.parse(issue()).envelope
    assert env.message() == b"visionpack-license/v1\n" + env.payload


@pytest.mark.parametrize("data", [b"", b"   \n", b"\n\n"])
def test_empty(data):
    assert reason(data) == "malformed"


def test_truncated(issue):
    data = issue()
    for cut in (10, len(data) // 2, len(data) - 10):
        assert reason(data[:cut]) == "malformed"


def test_huge(issue):
    data = issue()
    body = data.splitlines()
    huge = b"\n".join([body[0]] + body[1:-1] * 2000 + [body[-1]])
    assert len(huge) > fmt.MAX_BYTES
    assert reason(huge) == "malformed"


def test_binary_and_non_utf8():
    assert reason(bytes(range(256)) * 4) == "malformed"
    assert (
        reason("-----BEGIN VISIONPACK LICENSE-----\nzé\n-----END VISIONPACK LICENSE-----".encode("latin-1"))
        == "malformed"
    )
    assert reason(b"\xff\xfe" + "license".encode("utf-16-le")) == "malformed"


def test_not_bytes():
    assert reason("a str") == "malformed"
    assert reason(None) == "malformed"


def test_bad_base64_in_armour(issue):
    data = issue().replace(b"\n", b"\n!", 1)  # a non-alphabet character in the body
    assert reason(data) == "malformed"


def test_envelope_shape(issue):
    env = unwrap(issue())
    for bad in (
        {**env, "extra": 1},
        {k: v for k, v in env.items() if k != "kid"},
        {**env, "kid": 5},
        {**env, "kid": "XYZ"},
        {**env, "sig": env["sig"][:-4]},
        [env],
        "x",
    ):
        assert reason(rewrap(bad)) == "malformed"


def test_duplicate_keys_refused(issue):
    env = unwrap(issue())
    text = json.dumps(env)[:-1] + ', "kid": "0000000000000000"}'
    inner = base64.b64encode(text.encode()).decode()
    assert reason(f"{fmt.BEGIN}\n{inner}\n{fmt.END}".encode()) == "malformed"


@pytest.mark.parametrize("alg", ["none", "rsa-pss-sha256", "ED25519", "hs256", ""])
def test_unknown_algorithm_refused_before_anything_else(issue, alg):
    env = unwrap(issue())
    env["alg"] = alg
    env["sig"] = ""  # a refusal must not depend on the signature even being well formed
    assert reason(rewrap(env)) == "unsupported-algorithm"


def test_non_canonical_payload(issue):
    data = issue()
    p = payload_of(data)
    assert reason(with_payload(data, json.dumps(p, indent=1).encode())) == "malformed"


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: p.update(schema=2),
        lambda p: p.update(schema="1"),
        lambda p: p.update(schema=True),
        lambda p: p.pop("expires_at"),
        lambda p: p.update(extra="x"),
        lambda p: p.update(product="otherproduct"),
        lambda p: p.update(instances="3"),
        lambda p: p.update(instances=True),
        lambda p: p.update(instances=0),
        lambda p: p.update(instances=1.5),
        lambda p: p.update(deploys=[]),
        lambda p: p.update(deploys=["a", "a"]),
        lambda p: p.update(deploys="a"),
        lambda p: p.update(services=["../x"]),
        lambda p: p.update(customer=""),
        lambda p: p.update(customer="a\nb"),
        lambda p: p.update(id=7),
        lambda p: p.update(binding={"type": "gpu"}),
        lambda p: p.update(binding={"type": "gpu", "uuid_hash": "GPU-1"}),
        lambda p: p.update(binding={"type": "dongle"}),
        lambda p: p.update(components={}),
        lambda p: p.update(components={"mac": "00"}),
        lambda p: p.update(components={"Bad Name": "0" * 64}),
        lambda p: p.update(rule={"min_match": 0, "required": []}),
        lambda p: p.update(rule={"min_match": 99, "required": []}),
        lambda p: p.update(rule={"min_match": 1, "required": ["not_bound"]}),
        lambda p: p.update(rule={"min_match": 1}),
        lambda p: p.update(expires_at=p["not_before"]),
        lambda p: p.update(expires_at="2026-02-30T00:00:00Z"),
        lambda p: p.update(expires_at="2026-01-01 00:00:00"),
        lambda p: p.update(expires_at=1767225600),
        lambda p: p.update(not_before="2026-01-01T00:00:00+08:00"),
    ],
    ids=lambda f: "edit",
)
def test_strict_payload(issue, edit):
    data = issue()
    p = payload_of(data)
    edit(p)
    assert reason(with_payload(data, fmt.canonical_json(p))) == "malformed"


def test_payload_not_an_object(issue):
    data = issue()
    for raw in (b"[]", b"1", b"null", b"", b"{", b"NaN", b'{"a":Infinity}', b"\xff"):
        assert reason(with_payload(data, raw)) == "malformed"


def test_deeply_nested_payload(issue):
    data = issue()
    assert reason(with_payload(data, b"[" * 5000 + b"]" * 5000)) == "malformed"


def test_parse_time_strict():
    assert fmt.parse_time("1970-01-01T00:00:00Z", "t") == 0
    assert fmt.format_time(fmt.parse_time("2031-12-31T23:59:59Z", "t")) == "2031-12-31T23:59:59Z"
    for bad in ("2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "2026-1-01T00:00:00Z", " 2026-01-01T00:00:00Z"):
        with pytest.raises(LicenseError):
            fmt.parse_time(bad, "t")


def test_reason_codes_are_stable():
    assert fmt.REASONS == (
        "missing",
        "malformed",
        "unsupported-algorithm",
        "unknown-key",
        "bad-signature",
        "wrong-machine",
        "wrong-gpu",
        "gpu-not-licensed",
        "expired",
        "not-yet-valid",
        "deploy-not-licensed",
        "service-not-licensed",
        "instance-limit",
        "clock-rollback",
        "issued-in-future",
    )


def test_every_reason_is_documented_for_operators():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "licensing.md").read_text()
    for code in fmt.REASONS:
        assert f"| `{code}` |" in doc, code
