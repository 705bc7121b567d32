"""Optimiser and learning-rate schedule, with a separate learning rate for KAN parameters.

U-KAN trains its KAN layers with a larger learning rate (1e-2) than the rest (1e-4).
:func:`kan_parameter_names` decides which parameters get ``kan_lr``:

- ``"kan-layer"`` (U-KAN style): every parameter inside a KAN layer (:func:`kanseg.kan.is_kan_layer`, by type:
  a :class:`kanseg.kan.KANConv` with its basis convs, base conv, learnable basis and norm). Plain convolutions
  stay in the ``"other"`` group wherever they sit (the ``kanseg-conv`` smp encoder, residual shortcuts).
- ``"basis"``: only the learnable basis-function parameters, i.e. names with a ``basis`` path component
  (``...basis.beta``, ``...basis.phase_low``), not the ``basis_conv`` / ``base_conv`` weights.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

KanScope = Literal["kan-layer", "basis"]
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def kan_parameter_names(model: nn.Module, scope: KanScope = "kan-layer") -> set[str]:
    """Names (as in ``model.named_parameters()``) of the parameters that get the KAN learning rate."""
    if scope == "basis":
        return {name for name, _ in model.named_parameters() if "basis" in name.split(".")}
    if scope != "kan-layer":
        raise ValueError(f"unknown KAN parameter scope {scope!r}; valid: kan-layer, basis")
    from kanseg.kan import is_kan_layer

    names: set[str] = set()
    for module_name, module in model.named_modules():
        if is_kan_layer(module):
            prefix = f"{module_name}." if module_name else ""
            names.update(prefix + n for n, _ in module.named_parameters())
    return names


def build_optimizer(
    model: nn.Module,
    name: str = "adam",
    lr: float = 1e-4,
    weight_decay: float = 1e-4,
    kan_lr: float | None = None,
    kan_weight_decay: float | None = None,
    kan_scope: KanScope = "kan-layer",
) -> torch.optim.Optimizer:
    """Adam / AdamW with two parameter groups: ``"kan"`` (``kan_lr``) and ``"other"`` (``lr``).

    ``kan_lr=None`` uses ``lr`` for everything (one group). Frozen parameters are left out.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"name": "other", "params": [p for _, p in params], "lr": lr, "weight_decay": weight_decay}]
    if kan_lr is not None:
        kan = kan_parameter_names(model, kan_scope)
        groups = [
            {"name": "kan", "params": [p for n, p in params if n in kan], "lr": kan_lr,
             "weight_decay": weight_decay if kan_weight_decay is None else kan_weight_decay},
            {"name": "other", "params": [p for n, p in params if n not in kan], "lr": lr,
             "weight_decay": weight_decay},
        ]
        groups = [g for g in groups if g["params"]]
    return OPTIMIZERS[name](groups)


SCHEDULES = ("cosine", "poly", "none")


def lr_factor(epoch: int, epochs: int, name: str = "cosine", warmup_epochs: int = 0, min_ratio: float = 0.0) -> float:
    """The multiple of a group's base lr used in ``epoch`` (0-based) of ``epochs``.

    The first ``warmup_epochs`` epochs rise linearly, ``(epoch + 1) / (warmup_epochs + 1)``, so the base lr is
    reached at epoch ``warmup_epochs``; the schedule then runs over the remaining ``T = epochs - warmup_epochs``
    epochs, ``t = epoch - warmup_epochs``: ``cosine`` ``min_ratio + (1 - min_ratio) (1 + cos(pi t / T)) / 2``,
    ``poly`` (nnU-Net) ``(1 - t / T)^0.9``, ``none`` 1.
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    t, span = epoch - warmup_epochs, max(epochs - warmup_epochs, 1)
    if name == "cosine":
        return min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * min(t, span) / span)) / 2
    if name == "poly":
        return max(1 - t / span, 0.0) ** 0.9
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, epochs: int, name: str = "cosine", min_lr: float = 1e-5,
    warmup_epochs: int = 0,
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule (:func:`lr_factor`): ``cosine`` anneals every group from its lr to ``min_lr`` over
    ``epochs`` (U-KAN: CosineAnnealingLR(T_max=epochs, eta_min=min_lr)), ``poly`` decays it as nnU-Net,
    ``none`` keeps it constant; ``warmup_epochs`` > 0 puts a linear warm-up first.

    The factors are recomputed from ``epochs`` (not stored in the schedule's state), so a resumed run whose
    ``epochs`` was raised follows the longer schedule.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULES)}")
    if name == "cosine" and not warmup_epochs:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=min_lr)
    if name == "none" and not warmup_epochs:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)

    def factor(base_lr: float):  # a closure, not a callable object: LambdaLR would store and restore its fields
        ratio = min(min_lr / base_lr, 1.0) if base_lr > 0 else 0.0
        return lambda epoch: lr_factor(epoch, epochs, name, warmup_epochs, ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(g["lr"]) for g in optimizer.param_groups])


def accumulation_group(index: int, batches: int, accumulate: int) -> tuple[int, bool]:
    """Gradient accumulation over ``batches`` batches, ``accumulate`` per optimiser step: the size of the
    group batch ``index`` belongs to (the last group may be shorter) and whether the batch closes it (steps).
    An epoch makes ``ceil(batches / accumulate)`` optimiser steps."""
    start = index - index % accumulate
    size = min(accumulate, batches - start)
    return size, index + 1 == start + size
