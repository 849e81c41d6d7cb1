"""verify(): every rejection reason with a real license signed by a real vendor key."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest
from cryptography.hazmat.primitives import serialization

from visionpack.errors import LicenseError
from visionpack.licensing import fingerprint as fpmod, license as fmt
from visionpack.licensing.verify import key_id, load_public_keys, verify

NOW = time.time()


@pytest.fixture(autouse=True)
def _now_is_the_test_start():
    # Licenses are issued with the real clock, so "now" must be taken per test: a suite that
    # reaches this module minutes after collection would otherwise see them issued in the future.
    global NOW
    NOW = time.time()


def keys_of(keypair):
    return load_public_keys(keypair[1])


def reason(data, keypair, machine, now=None, **kw) -> str:
    now = NOW if now is None else now
    with pytest.raises(LicenseError) as exc:
        verify(data, keys_of(keypair), machine, now, **kw)
    assert exc.value.detail  # every refusal explains itself
    return exc.value.reason


def flip(blob: str, pos: int) -> str:
    raw = bytearray(base64.b64decode(blob))
    raw[pos % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def reenvelope(data: bytes, **changes) -> bytes:
    lines = data.decode().strip().splitlines()
    env = json.loads(base64.b64decode("".join(lines[1:-1])))
    env.update(changes)
    inner = base64.b64encode(fmt.canonical_json(env)).decode()
    return f"{fmt.BEGIN}\n{inner}\n{fmt.END}\n".encode()


def envelope_of(data: bytes) -> dict:
    lines = data.decode().strip().splitlines()
    return json.loads(base64.b64decode("".join(lines[1:-1])))


def test_valid_on_this_machine(issue, keypair, machine):
    v = verify(issue(customer="ACME", instances=2), keys_of(keypair), machine, NOW, deploy="d", service="face")
    assert v.customer == "ACME" and v.instances == 2 and v.binding == "machine"
    assert v.days_left == 29 or v.days_left == 30
    assert set(v.matched) == set(machine.present()) and v.mismatched == ()
    assert not v.expiring_soon and v.warnings == ()
    d = v.to_dict()
    assert d["deploys"] == "*" and d["expires_at"].endswith("Z")
    json.dumps(d)


@pytest.mark.parametrize("pos", [0, 17, 101, -1])
def test_one_byte_changed_in_payload(issue, keypair, machine, pos):
    data = issue()
    env = envelope_of(data)
    assert reason(reenvelope(data, payload=flip(env["payload"], pos)), keypair, machine) in ("bad-signature",)


@pytest.mark.parametrize("pos", [0, 31, 63])
def test_one_byte_changed_in_signature(issue, keypair, machine, pos):
    data = issue()
    env = envelope_of(data)
    assert reason(reenvelope(data, sig=flip(env["sig"], pos)), keypair, machine) == "bad-signature"


def test_meaningful_payload_edit_is_caught(issue, keypair, machine):
    """Extending the expiry by hand (a valid, canonical payload) still breaks the signature."""
    data = issue()
    env = envelope_of(data)
    p = json.loads(base64.b64decode(env["payload"]))
    p["expires_at"] = "2099-01-01T00:00:00Z"
    forged = reenvelope(data, payload=base64.b64encode(fmt.canonical_json(p)).decode())
    assert fmt.parse(forged).expires_at > fmt.parse(data).expires_at  # well-formed ...
    assert reason(forged, keypair, machine) == "bad-signature"  # ... but not signed


def test_another_vendors_key(issue, keypair, other_keypair, machine):
    assert reason(issue(key=other_keypair), keypair, machine) == "unknown-key"


def test_another_vendors_key_with_our_kid(issue, keypair, other_keypair, machine):
    data = issue(key=other_keypair)
    ours = key_id(keypair[0].public_key())
    assert reason(reenvelope(data, kid=ours), keypair, machine) == "bad-signature"


def test_no_keys_installed(issue, machine):
    with pytest.raises(LicenseError) as exc:
        verify(issue(), {}, machine, NOW)
    assert exc.value.reason == "unknown-key" and "none installed" in exc.value.detail


def test_unknown_algorithm_with_a_real_signature(issue, keypair, machine):
    data = issue()
    env = fmt.parse(data).envelope
    sig = keypair[0].sign(env.message())
    forged = fmt.armor(fmt.Envelope(alg="ed448", kid=env.kid, payload=env.payload, sig=sig))
    assert reason(forged, keypair, machine) == "unsupported-algorithm"


def test_another_machine(issue, keypair, machine):
    every = tuple(machine.present())
    assert reason(issue(change=every), keypair, machine) == "wrong-machine"


def test_one_component_changed_still_valid(issue, keypair, machine):
    changed = next(n for n in machine.present() if n != "machine_id")
    n = len(machine.present())
    v = verify(issue(change=(changed,), min_match=n - 1), keys_of(keypair), machine, NOW)
    assert v.mismatched == (changed,) and changed not in v.matched
    assert any(changed in w for w in v.warnings)


def test_too_many_components_changed(issue, keypair, machine):
    changed = tuple(n for n in machine.present() if n != "machine_id")[:2]
    n = len(machine.present())
    with pytest.raises(LicenseError) as exc:
        verify(issue(change=changed, min_match=n - 1), keys_of(keypair), machine, NOW)
    assert exc.value.reason == "wrong-machine"
    assert all(c in exc.value.detail for c in changed)


def test_machine_id_changed_while_required(issue, keypair, machine):
    n = len(machine.present())
    data = issue(change=("machine_id",), min_match=n - 1, require="machine_id")
    assert reason(data, keypair, machine) == "wrong-machine"
    # The same change is tolerated when the vendor does not require the machine id.
    assert verify(issue(change=("machine_id",), min_match=n - 1, require=""), keys_of(keypair), machine, NOW)


def test_bound_component_absent_here_counts_as_mismatch(issue, keypair, machine, request_doc):
    req = json.loads(json.dumps(request_doc))
    absent = [k for k in fpmod.COMPONENTS if req["components"][k] is None]
    extra = absent[0] if absent else "tpm"
    req["components"][extra] = fpmod.component_hash(extra, "x")
    n = len(machine.present())
    v = verify(issue(request=req, min_match=n), keys_of(keypair), machine, NOW)
    assert extra in v.mismatched
    assert reason(issue(request=req, min_match=n + 1), keypair, machine) == "wrong-machine"


def test_gpu_binding(issue, keypair, machine, request_doc):
    req = json.loads(json.dumps(request_doc))
    fake_gpu = fpmod.gpu_hash("GPU-00000000-1111-2222-3333-444444444444")
    req["gpus"] = [fake_gpu]  # a GPU this machine does not have
    assert fake_gpu not in machine.gpus
    assert reason(issue(request=req, gpu="0"), keypair, machine) == "wrong-gpu"


def test_expired(issue, keypair, machine):
    data = issue(now=NOW - 40 * 86400, days=30)
    assert reason(data, keypair, machine) == "expired"
    lic = fmt.parse(data)
    assert reason(data, keypair, machine, now=lic.expires_at) == "expired"  # the end is exclusive
    assert verify(data, keys_of(keypair), machine, lic.expires_at - 1)


def test_not_yet_valid(issue, keypair, machine):
    start = fmt.format_time(NOW + 86400)
    data = issue(not_before=start)
    assert reason(data, keypair, machine) == "not-yet-valid"
    assert verify(data, keys_of(keypair), machine, NOW + 86400 + 1)


def test_issued_in_future(issue, keypair, machine):
    data = issue(now=NOW + 3600)
    assert reason(data, keypair, machine) == "issued-in-future"
    # Within the 5-minute drift a vendor clock slightly ahead is fine.
    assert verify(issue(now=NOW + 200), keys_of(keypair), machine, NOW)


def test_deploy_and_service_not_licensed(issue, keypair, machine):
    data = issue(deploys="shop-a,shop-b", services="classification,keypoint")
    keys = keys_of(keypair)
    assert verify(data, keys, machine, NOW, deploy="shop-b", service="keypoint")
    assert reason(data, keypair, machine, deploy="shop-c", service="keypoint") == "deploy-not-licensed"
    assert reason(data, keypair, machine, deploy="shop-a", service="face") == "service-not-licensed"
    assert verify(data, keys, machine, NOW)  # no deploy/service given: the file itself is fine


def test_expiring_soon_warning(issue, keypair, machine):
    v = verify(issue(now=NOW - 25 * 86400, days=30), keys_of(keypair), machine, NOW)
    assert v.expiring_soon and v.days_left == 4 and "expires in" in v.warnings[0]


def test_load_public_keys_formats(tmp_path, keypair, other_keypair, caplog):
    priv = keypair[0]
    pub = priv.public_key()
    other = other_keypair.public_key()
    (tmp_path / "vendor-other.pub").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "a.pem").write_bytes(
        pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "b.pub").write_bytes(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    (tmp_path / "leak.pem").write_bytes(
        priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    (tmp_path / "short.pub").write_bytes(b"123")
    (tmp_path / "license.lic").write_bytes(b"not a key")
    (tmp_path / "dir.pem").mkdir()
    with caplog.at_level(logging.ERROR, logger="visionpack.license"):
        keys = load_public_keys(tmp_path)
    assert sorted(keys) == sorted([key_id(pub), key_id(other)])
    assert any("PRIVATE" in r.getMessage() for r in caplog.records)
    assert load_public_keys(tmp_path / "absent") == {}
