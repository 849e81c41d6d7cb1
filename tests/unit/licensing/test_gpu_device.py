"""A GPU-bound license licenses one GPU: the deploy's ``device: gpu:N`` must be that GPU (gpu-not-licensed)."""

from __future__ import annotations

import dataclasses
import json
import time
from types import SimpleNamespace

import pytest

from visionpack.errors import LicenseError
from visionpack.fsutil import atomic_write
from visionpack.licensing import fingerprint as fpmod, gate as gate_mod
from visionpack.licensing.admin import check_for_start
from visionpack.licensing.gate import LicenseGate
from visionpack.licensing.verify import load_public_keys, verify

# Two GPUs in nvidia-smi order; the license binds the second one.
GPUS = (
    fpmod.gpu_hash("GPU-aaaaaaaa-0000-0000-0000-000000000000"),
    fpmod.gpu_hash("GPU-bbbbbbbb-1111-1111-1111-111111111111"),
)


@pytest.fixture
def two_gpus(machine):
    return dataclasses.replace(machine, gpus=GPUS)


@pytest.fixture
def gpu_license(issue, request_doc):
    req = json.loads(json.dumps(request_doc))
    req["gpus"] = list(GPUS)
    return issue(request=req, gpu="1")


def check(data, keypair, fp, device):
    return verify(data, load_public_keys(keypair[1]), fp, time.time(), deploy="d", service="face", device=device)


def refusal(data, keypair, fp, device) -> LicenseError:
    with pytest.raises(LicenseError) as exc:
        check(data, keypair, fp, device)
    return exc.value


def test_the_bound_gpu_is_licensed(gpu_license, keypair, two_gpus):
    verdict = check(gpu_license, keypair, two_gpus, "gpu:1")
    assert verdict.binding == "gpu" and verdict.gpu_index == 1


def test_another_gpu_of_the_machine_is_refused_and_the_bound_one_named(gpu_license, keypair, two_gpus):
    err = refusal(gpu_license, keypair, two_gpus, "gpu:0")
    assert err.reason == "gpu-not-licensed"
    assert "gpu:0" in err.detail and "set the deploy's device to gpu:1" in err.detail


def test_a_gpu_index_past_the_machine_is_refused(gpu_license, keypair, two_gpus):
    assert refusal(gpu_license, keypair, two_gpus, "gpu:7").reason == "gpu-not-licensed"


@pytest.mark.parametrize("device", ["cpu", None])
def test_cpu_deploys_need_no_gpu_of_their_own(gpu_license, keypair, two_gpus, device):
    assert check(gpu_license, keypair, two_gpus, device).gpu_index == 1


def test_the_bound_gpu_missing_is_still_wrong_gpu_whatever_the_device(gpu_license, keypair, machine):
    # The machine check comes first: a license whose GPU is gone says so, not gpu-not-licensed.
    gone = dataclasses.replace(machine, gpus=(GPUS[0],))
    assert refusal(gpu_license, keypair, gone, "gpu:0").reason == "wrong-gpu"


def test_a_machine_bound_license_lets_a_deploy_use_any_gpu(issue, keypair, two_gpus):
    verdict = check(issue(), keypair, two_gpus, "gpu:1")
    assert verdict.binding == "machine" and verdict.gpu_index is None


@pytest.fixture
def lic_dir(tmp_path, keypair, gpu_license, two_gpus, monkeypatch):
    d = tmp_path / "licenses"
    d.mkdir()
    for key in keypair[1].iterdir():
        (d / key.name).write_bytes(key.read_bytes())
    atomic_write(d / "license.lic", gpu_license)
    # The gate reads the hardware itself: this host's fingerprint with the two GPUs above.
    monkeypatch.setattr(gate_mod, "collect", lambda: two_gpus)
    return d


def test_the_service_gate_checks_the_configured_device(lic_dir, tmp_path):
    cfg = SimpleNamespace(license_dir=str(lic_dir), deploy="d", service="face", device="gpu:0")
    gate = LicenseGate.for_service(cfg)
    with pytest.raises(LicenseError) as exc:
        gate.check()
    assert exc.value.reason == "gpu-not-licensed"
    assert gate.snapshot()["reason"] == "gpu-not-licensed"  # what /ready shows
    ok = LicenseGate.for_service(SimpleNamespace(license_dir=str(lic_dir), deploy="d", service="face", device="gpu:1"))
    assert ok.check().gpu_index == 1


def test_a_master_on_the_wrong_gpu_does_not_start(lic_dir, tmp_path):
    # What start/gunicorn_conf.py's on_starting calls before it takes a slot or forks a worker.
    with pytest.raises(LicenseError) as exc:
        check_for_start(lic_dir, "d", "face", tmp_path / "state", device="gpu:0")
    assert exc.value.reason == "gpu-not-licensed"
    assert check_for_start(lic_dir, "d", "face", tmp_path / "state", device="gpu:1").gpu_index == 1
