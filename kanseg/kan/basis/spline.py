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

    # --- the fused torch path (kanseg.kernels.AnalyticExpander): B = exp(−d²), d = (t − c)/h, dB/dt = −2·B·d/h ---
    analytic_vjp = True

    def _distance(self, t):
        return (t.unsqueeze(2) - _bcast(self.grid, t)).div_(self.denominator)

    def fast_expand(self, t):
        return self._distance(t).square_().neg_().exp_().flatten(1, 2)

    def expand_cached(self, t):
        d = self._distance(t)
        b = d.square().neg_().exp_()
        return b.flatten(1, 2), (d, b)

    def expand_vjp(self, t, cache, grad):
        d, b = cache
        w = grad.view_as(b) * b
        return w.mul_(d).sum(2).mul_(-2.0 / self.denominator), {}


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

    # --- the fused torch path (kanseg.kernels.AnalyticExpander) ------------------------------------------------
    # Cox–de Boor with two temporaries per level; the derivative of an order-k B-spline is
    # dB_{i,k}/dx = k/(g_{i+k} − g_i)·B_{i,k−1} − k/(g_{i+k+1} − g_{i+1})·B_{i+1,k−1} (no parameters).
    analytic_vjp = True

    def _level_up(self, t, bases, k: int):
        """Order-``k`` bases from the order-(k−1) ``bases`` (read only), on two temporaries."""
        x, grid = t.unsqueeze(2), _bcast(self.grid, t)
        left = (x - grid[:, :, :-(k + 1)]).div_(grid[:, :, k:-1] - grid[:, :, :-(k + 1)])
        right = (grid[:, :, k + 1:] - x).div_(grid[:, :, k + 1:] - grid[:, :, 1:-k])
        return left.mul_(bases[:, :, :-1]).add_(right.mul_(bases[:, :, 1:]))

    def _levels(self, t, stop: int):
        """The order-``stop`` bases ``(B, C, P_stop, *S)``."""
        x, grid = t.unsqueeze(2), _bcast(self.grid, t)
        bases = ((x >= grid[:, :, :-1]) & (x < grid[:, :, 1:])).to(t.dtype)
        for k in range(1, stop + 1):
            bases = self._level_up(t, bases, k)
        return bases

    def fast_expand(self, t):
        return self._levels(t, self.spline_order).flatten(1, 2)

    def expand_cached(self, t):
        k = self.spline_order
        if k == 0:
            return self._levels(t, 0).flatten(1, 2), None
        below = self._levels(t, k - 1)
        return self._level_up(t, below, k).flatten(1, 2), below

    def expand_vjp(self, t, cache, grad):
        k = self.spline_order
        if k == 0:
            return torch.zeros_like(t), {}
        below = cache
        grid = _bcast(self.grid, t)
        c_left = k / (grid[:, :, k:-1] - grid[:, :, :-(k + 1)])
        c_right = k / (grid[:, :, k + 1:] - grid[:, :, 1:-k])
        w = grad.view(*below.shape[:2], -1, *below.shape[3:])
        up = (w * c_left).mul_(below[:, :, :-1]).sum(2)
        down = (w * c_right).mul_(below[:, :, 1:]).sum(2)
        return up.sub_(down), {}


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

    # --- the fused torch path (kanseg.kernels.AnalyticExpander) ------------------------------------------------
    # a = ReLU(x − l), b = ReLU(h − x), y = r·a·b, B = y²:  dB/dx = 2r·y·(b − a)  (y = 0 wherever a or b is 0),
    # dB/dl = −2r·y·b,  dB/dh = 2r·y·a; the phase gradients sum over the batch and space.
    analytic_vjp = True

    def _ramps(self, t):
        x = t.unsqueeze(2)
        a = (x - _bcast(self.phase_low, t)).clamp_min_(0)
        b = (_bcast(self.phase_high, t) - x).clamp_min_(0)
        return a, b

    def fast_expand(self, t):
        a, b = self._ramps(t)
        return a.mul_(b).mul_(self.r).square_().flatten(1, 2)

    def expand_cached(self, t):
        a, b = self._ramps(t)
        y = (a * b).mul_(self.r)
        return (y * y).flatten(1, 2), (a, b, y)

    def expand_vjp(self, t, cache, grad):
        a, b, y = cache
        w = grad.view_as(y) * y
        w.mul_(2.0 * self.r)
        wb, wa = b.mul_(w), a.mul_(w)                      # the cache is not needed again
        grad_t = wb.sum(2) - wa.sum(2)
        own = {}
        if self.phase_low.requires_grad or self.phase_high.requires_grad:
            dims = [0, *range(3, wa.dim())]
            own = {"phase_low": -wb.sum(dims), "phase_high": wa.sum(dims)}
        return grad_t, own
