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


def build_scheduler(
    optimizer: torch.optim.Optimizer, epochs: int, name: str = "cosine", min_lr: float = 1e-5
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: ``cosine`` anneals every group from its lr to ``min_lr`` over ``epochs``
    (U-KAN: CosineAnnealingLR(T_max=epochs, eta_min=min_lr)); ``none`` keeps the lr constant."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=min_lr)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    raise ValueError(f"unknown scheduler {name!r}; valid: cosine, none")
