"""inference/memory.py: the malloc arena limit for ONNX Runtime and OpenVINO workers, once, switchable off."""

from __future__ import annotations

import ctypes

from visionpack.inference import memory


def test_off_when_the_deploy_turns_malloc_tuning_off():
    assert memory.limit_arenas(False) is False


def test_applied_on_glibc_and_a_no_op_without_it(monkeypatch):
    assert memory.limit_arenas(True) is True  # this machine's libc is glibc

    def no_libc(*_a, **_k):
        raise OSError("no libc")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert memory.limit_arenas.__wrapped__(True) is False
