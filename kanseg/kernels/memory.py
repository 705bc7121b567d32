"""Measure what autograd keeps for backward: the memory a training step needs for activations."""

from __future__ import annotations

from typing import Callable

import torch


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs.

    Storages are keyed by their StorageImpl, so views of one tensor count once and fake tensors (no data pointer)
    work too. Parameters saved by the ops count as well.
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())
