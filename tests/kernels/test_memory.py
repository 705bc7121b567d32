"""kanseg.kernels.memory.saved_bytes: counts each saved storage once, views included."""

import torch

from kanseg.kernels.memory import saved_bytes


def test_counts_distinct_storages_once():
    x = torch.randn(1000, requires_grad=True)
    assert saved_bytes(lambda: x * x) == 4000              # x saved twice, one storage
    y = torch.randn(1000, requires_grad=True)
    assert saved_bytes(lambda: x * y) == 8000
    assert saved_bytes(lambda: x[:10] * x[10:20]) == 4000  # two views of x's storage
    assert saved_bytes(lambda: x + y) == 0                 # addition saves nothing


def test_nothing_saved_without_grad():
    x = torch.randn(100)
    assert saved_bytes(lambda: torch.sigmoid(x)) == 0
