"""Grid families: RBF (FastKAN), B-spline (KAN) and ReLU-KAN. ``basis``: ``(B, C, *S) -> (B, C, P, *S)``."""

from __future__ import annotations

import torch
from torch import nn

from kanseg.kan.basis.base import BasisFamily, check_nonneg_int, check_range, register_family


def _bcast(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Shape a ``(P,)`` or ``(C, P)`` table to broadcast against ``(B, C, P, *S)``."""
    v = v.to(t.dtype)
    if v.dim() == 1:
        return v.view(1, 1, -1, *([1] * (t.dim() - 2)))
    return v.view(1, *v.shape, *([1] * (t.dim() - 2)))


@register_family
class RBFBasis(BasisFamily):
    """FastKAN: ν = the layer's norm applied to the input (InstanceNorm by default); B = exp(−((t − c_i)/h)²).

    ``grid_size`` fixed centres ``c`` evenly on ``grid_range``; h = (hi − lo)/(grid_size − 1). Base branch SiLU(x);
    no output norm and no activation (the norm is ν).
    """

    name = "rbf"
    norm_on_input = True
    post_activation = None
    options = {"grid_size": 8, "grid_range": (-2.0, 2.0)}

    def __init__(self, norm_module: nn.Module | None = None, **kwargs):
        super().__init__(**kwargs)
        n = check_nonneg_int("grid_size", self.hparams["grid_size"], self.name, minimum=2)
        lo, hi = check_range("grid_range", self.hparams["grid_range"], self.name)
        self.register_buffer("grid", torch.linspace(lo, hi, n), persistent=False)
        self.denominator = (hi - lo) / (n - 1)
        self.input_norm = norm_module if norm_module is not None else nn.Identity()

    @property
    def num_basis(self) -> int:
        return self.grid.numel()

    def input_map(self, x):
        return self.input_norm(x)

    def basis(self, t):
        return torch.exp(-(((t.unsqueeze(2) - _bcast(self.grid, t)) / self.denominator) ** 2))


@register_family
class BSplineBasis(BasisFamily):
    """KAN: B-splines of order k on a uniform grid over ``grid_range`` with ``grid_size`` intervals, extended by k
    knots on each side (Cox–de Boor); P = grid_size + spline_order. No input map.

    Base branch GELU(x); output PReLU(Norm(·)) with one slope per group.
    """

    name = "bspline"
    base_activation = "gelu"
    post_activation = "group-prelu"
    options = {"grid_size": 5, "spline_order": 3, "grid_range": (-1.0, 1.0)}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        g = check_nonneg_int("grid_size", self.hparams["grid_size"], self.name, minimum=1)
        k = check_nonneg_int("spline_order", self.hparams["spline_order"], self.name)
        lo, hi = check_range("grid_range", self.hparams["grid_range"], self.name)
        h = (hi - lo) / g
        self.spline_order = k
        self.register_buffer("grid", torch.linspace(lo - h * k, hi + h * k, g + 2 * k + 1), persistent=False)

    @property
    def num_basis(self) -> int:
        return self.grid.numel() - 1 - self.spline_order

    def basis(self, t):
        x = t.unsqueeze(2)
        grid = _bcast(self.grid, t)
        g = lambda a, b=None: grid[:, :, a:b]  # noqa: E731  (slice of knots along the basis axis)
        bases = ((x >= g(0, -1)) & (x < g(1))).to(t.dtype)
        for k in range(1, self.spline_order + 1):
            left = (x - g(0, -(k + 1))) / (g(k, -1) - g(0, -(k + 1)))
            right = (g(k + 1) - x) / (g(k + 1) - g(1, -k))
            bases = left * bases[:, :, :-1] + right * bases[:, :, 1:]
        return bases


@register_family
class ReLUBasis(BasisFamily):
    """ReLU-KAN: B_i = [r·ReLU(x − l_i)·ReLU(h_i − x)]², i = 1..g+k, l_i = (i−k−1)/g, h_i = l_i + (k+1)/g,
    r = 4g²/(k+1)². ``phase_low`` / ``phase_high`` ``(C, g+k)`` are learnable per input channel
    (``train_ab=False`` freezes them). Base branch SiLU(x); output SiLU(Norm(·)).
    """

    name = "relu"
    options = {"g": 5, "k": 3, "train_ab": True}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        g = check_nonneg_int("g", self.hparams["g"], self.name, minimum=1)
        k = check_nonneg_int("k", self.hparams["k"], self.name)
        self.r = 4.0 * g * g / ((k + 1) * (k + 1))
        low = torch.arange(-k, g, dtype=torch.float32) / g
        train = bool(self.hparams["train_ab"])
        self.phase_low = nn.Parameter(low.repeat(self.in_channels, 1), requires_grad=train)
        self.phase_high = nn.Parameter((low + (k + 1) / g).repeat(self.in_channels, 1), requires_grad=train)

    @property
    def num_basis(self) -> int:
        return self.phase_low.shape[1]

    def basis(self, t):
        x = t.unsqueeze(2)
        y = torch.relu(x - _bcast(self.phase_low, t)) * torch.relu(_bcast(self.phase_high, t) - x) * self.r
        return y * y
