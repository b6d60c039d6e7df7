"""A trainer on a CPU uses one thread unless PIFT_CPU_THREADS says otherwise (threads.py)."""

from __future__ import annotations

import os

import pytest
import torch

from pift.errors import ConfigError
from pift.threads import limit_cpu_threads


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch: pytest.MonkeyPatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", ""))
    yield
    torch.set_num_threads(before)


def test_one_thread_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIFT_CPU_THREADS", raising=False)
    assert limit_cpu_threads() == 1
    assert (torch.get_num_threads(), os.environ["OMP_NUM_THREADS"]) == (1, "1")


def test_the_worker_may_say_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIFT_CPU_THREADS", "3")
    assert limit_cpu_threads() == 3
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_count_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PIFT_CPU_THREADS", value)
    with pytest.raises(ConfigError, match="PIFT_CPU_THREADS"):
        limit_cpu_threads()


def test_a_gpu_keeps_torchs_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    before = torch.get_num_threads()
    assert limit_cpu_threads() is None
    assert torch.get_num_threads() == before
