"""Regularisers of the paper's CIFAR-100 study (Drokin 2024, spec section 3), for any KAN layer.

* :class:`NoiseInjection`: ``x + α·M⊙ε⊙σ`` in training mode only (the "noise" dropout kind).
* :func:`make_dropout`: channel dropout or noise injection, for the ``full``/``poly``/``degree`` placements of
  :class:`~kanseg.kan.KANConv`.
* :func:`weight_l1` and :class:`ActivationPenalty`: explicit loss terms (the reference's weight-penalty hooks never
  fired and its activation hooks were never registered; here each term is a plain differentiable loss).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from kanseg.kan.factories import dropout_layer

DROPOUT_PLACEMENTS = ("full", "poly", "degree")
DROPOUT_KINDS = ("channel", "noise")
NOISE_STD_OVER = ("channel", "position")


class NoiseInjection(nn.Module):
    """``x ← x + α·M⊙ε⊙σ`` in training mode, identity in eval.

    ``M`` elementwise Bernoulli(p) over the full shape of x, ``ε ~ N(0, 1)`` elementwise, ``σ`` the unbiased std of
    x (not detached): per channel over batch and positions, shape ``(1, C, 1…)`` (``std_over="channel"``, the
    reference's current code) or over channels per sample and position, ``(B, 1, *S)`` (``"position"``, the version
    of the CIFAR-100 study). Shapes: ``(B, C, *S) -> (B, C, *S)``.
    """

    def __init__(self, p: float, alpha: float = 0.05, std_over: str = "channel"):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"noise probability must be in [0, 1], got {p!r}")
        if std_over not in NOISE_STD_OVER:
            raise ValueError(f"unknown noise_std_over {std_over!r}; valid: {', '.join(NOISE_STD_OVER)}")
        self.p, self.alpha, self.std_over = p, alpha, std_over

    def sigma(self, x: torch.Tensor) -> torch.Tensor:
        dims = [0, *range(2, x.dim())] if self.std_over == "channel" else [1]
        return x.std(dim=dims, keepdim=True, unbiased=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = torch.rand_like(x) < self.p
        return x + self.alpha * mask * torch.randn_like(x) * self.sigma(x)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, std_over={self.std_over!r}"


def make_dropout(spatial_dims: int, p: float, kind: str = "channel", alpha: float = 0.05,
                 std_over: str = "channel") -> nn.Module | None:
    """Channel dropout (``kind="channel"``) or :class:`NoiseInjection` (``"noise"``) with probability ``p``;
    ``None`` when ``p == 0``."""
    if kind not in DROPOUT_KINDS:
        raise ValueError(f"unknown dropout_kind {kind!r}; valid: {', '.join(DROPOUT_KINDS)}")
    if kind == "channel":
        return dropout_layer(spatial_dims, p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")
    return NoiseInjection(p, alpha, std_over) if p > 0 else None


def kan_layers(model: nn.Module) -> list[nn.Module]:
    """The model's KAN conv layers in registration order (PEFT layers included)."""
    from kanseg.kan.factory import is_kan_layer

    return [m for m in model.modules() if is_kan_layer(m)]


def weight_l1(layers: Iterable[nn.Module]) -> torch.Tensor:
    """``Σ_ℓ Σ_{w ∈ ℓ} |w|`` over every trainable parameter of ``layers`` (base and basis weights, Gram β, norm
    affine)."""
    terms = [p.abs().sum() for layer in layers for p in layer.parameters() if p.requires_grad]
    return torch.stack(terms).sum() if terms else torch.zeros(())


class ActivationPenalty:
    """Forward hooks collecting each layer's output ``y (B, C, *S)`` while grad is enabled; :meth:`pop` returns

        R₁ = Σ_ℓ mean_{c,s} Σ_b |y_{b,c,s}|,      R₂ = Σ_ℓ mean_{c,s} (Σ_b y_{b,c,s}²)^{1/2}

    (the reference's batch-axis norms, spec §3.4; ``per_sample=True`` divides both by B) and forgets the outputs.
    Use as a context manager or call :meth:`remove`.
    """

    def __init__(self, layers: Iterable[nn.Module], per_sample: bool = False):
        self.per_sample = per_sample
        self.outputs: list[torch.Tensor] = []
        self.handles = [layer.register_forward_hook(self._hook) for layer in layers]

    def _hook(self, module: nn.Module, args, output: torch.Tensor) -> None:
        if torch.is_grad_enabled() and module.training:
            self.outputs.append(output)

    def pop(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(R₁, R₂)`` of the outputs collected since the last call (zeros if none)."""
        r1, r2 = torch.zeros(()), torch.zeros(())
        for y in self.outputs:
            scale = y.shape[0] if self.per_sample else 1
            r1 = r1.to(y.device) + torch.linalg.vector_norm(y, 1, dim=0).mean() / scale
            r2 = r2.to(y.device) + torch.linalg.vector_norm(y, 2, dim=0).mean() / scale
        self.outputs = []
        return r1, r2

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles, self.outputs = [], []

    def __enter__(self) -> ActivationPenalty:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
