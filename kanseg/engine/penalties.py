"""The paper's penalties as loss terms (spec section 3.3-3.4), configured by ``loss.l1_weight``, ``loss.l1_activation``,
``loss.l2_activation`` (and ``loss.activation_per_sample``).

:class:`PenalisedLoss` wraps the task loss: ``loss = task + λ_w·Σ|w| + λ₁·R₁ + λ₂·R₂``, added before AMP scaling
(the trainer scales what the loss returns). The weight term covers every KAN conv except the network's first (the
study's intent); the activation terms hook every KAN conv of any dims and family. Each term's epoch mean is logged
separately, as ``penalties`` in ``metrics.jsonl``, by :class:`PenaltyLog`.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from kanseg.engine.callbacks import Callback
from kanseg.kan.regularization import ActivationPenalty, kan_layers, weight_l1


class PenalisedLoss(nn.Module):
    """``loss(outputs, labels) + penalties``; the penalties count only while grad is enabled (training).

    Args:
        loss: the task loss.
        model: the network whose KAN convs are penalised (hooks are registered on them here).
        l1_weight, l1_activation, l2_activation: λ of each term (0: off).
        activation_per_sample: divide R₁ and R₂ by the batch size.
    """

    def __init__(self, loss: nn.Module, model: nn.Module, l1_weight: float = 0.0, l1_activation: float = 0.0,
                 l2_activation: float = 0.0, activation_per_sample: bool = False):
        super().__init__()
        self.loss = loss
        self.l1_weight, self.l1_activation, self.l2_activation = l1_weight, l1_activation, l2_activation
        layers = kan_layers(model)
        self._weighted = layers[1:]  # plain list: not submodules of the loss (no state-dict keys, no .to() copies)
        self._activations = ActivationPenalty(layers, activation_per_sample) if l1_activation or l2_activation \
            else None
        self.sums: dict[str, float] = defaultdict(float)
        self.steps = 0

    def penalties(self) -> dict[str, torch.Tensor]:
        """The λ-weighted terms of this step (the activation outputs collected since the last call)."""
        terms = {}
        if self.l1_weight:
            terms["l1_weight"] = self.l1_weight * weight_l1(self._weighted)
        if self._activations is not None:
            r1, r2 = self._activations.pop()
            if self.l1_activation:
                terms["l1_activation"] = self.l1_activation * r1
            if self.l2_activation:
                terms["l2_activation"] = self.l2_activation * r2
        return terms

    def forward(self, outputs, labels: torch.Tensor) -> torch.Tensor:
        task = self.loss(outputs, labels)
        if not torch.is_grad_enabled():
            return task
        terms = self.penalties()
        for name, value in terms.items():
            self.sums[name] += float(value.detach())
        self.steps += 1
        return task + sum(terms.values()) if terms else task

    def epoch_means(self) -> dict[str, float]:
        """Mean of each term over the steps since the last call, then reset."""
        means = {name: total / max(self.steps, 1) for name, total in self.sums.items()}
        self.sums, self.steps = defaultdict(float), 0
        return means


class PenaltyLog(Callback):
    """Puts the epoch means of the penalty terms into the epoch record (``metrics.jsonl``: ``penalties``)."""

    def on_train_epoch_end(self, state) -> None:
        if isinstance(state.loss_fn, PenalisedLoss):
            state.record["penalties"] = state.loss_fn.epoch_means()


def with_penalties(loss: nn.Module, model: nn.Module, cfg) -> nn.Module:
    """``loss`` wrapped in :class:`PenalisedLoss` when the loss config turns a penalty on, else ``loss``."""
    c = cfg.loss
    if not (c.l1_weight or c.l1_activation or c.l2_activation):
        return loss
    return PenalisedLoss(loss, model, c.l1_weight, c.l1_activation, c.l2_activation, c.activation_per_sample)
