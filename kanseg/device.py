"""Which torch device a run or a prediction uses, from ``--device`` (one rule for training, evaluation and
prediction)."""

from __future__ import annotations

import torch

from kanseg.errors import KansegError


def resolve_device(device: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``
    as given.

    Args:
        device: the preference.
        local_rank: this process's rank on its node (torchrun); a CUDA device without an index then becomes
            ``cuda:<local_rank mod GPU count>``, one GPU per process. ``None``: left without an index.

    Raises:
        KansegError: an unknown device, or CUDA asked for on a machine without a GPU.
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise KansegError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise KansegError(f"--device {device} requested but no CUDA GPU is available; use --device cpu")
        if local_rank is not None and resolved.index is None:
            resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
    return resolved
