"""One device rule for training, evaluation and prediction."""

import pytest
import torch

from kanseg.device import resolve_device
from kanseg.errors import KansegError


def test_cpu_and_auto_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(KansegError, match="--device cuda requested but no CUDA GPU is available; use --device cpu"):
        resolve_device("cuda", local_rank=0)


def test_cuda_gets_the_local_rank_gpu_only_under_torchrun(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)


def test_unknown_device_lists_the_valid_ones():
    with pytest.raises(KansegError, match="unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N"):
        resolve_device("tpu")
