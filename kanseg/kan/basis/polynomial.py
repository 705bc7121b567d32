"""Polynomial families: Gram (KAGN), Chebyshev (KACN), Legendre (KALN), Jacobi (KAJN), Bernstein (KABN).

The first four are three-term recurrences whose math is defined once in :mod:`kanseg.kernels.recurrences`;
:class:`RecurrenceFamily` evaluates it, the classes here only wire the layer.

Every ``basis`` maps ``t`` of shape ``(B, C, *S)`` to ``(B, C, D+1, *S)``: P = degree + 1 functions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kanseg.kan.basis.base import BasisFamily, check_nonneg_int, register_family
from kanseg.kernels.recurrences import CLAMP_EPS, Recurrence, get_recurrence


class _PolynomialFamily(BasisFamily):
    options = {"degree": 3}
    supports_lean = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.degree = check_nonneg_int("degree", self.hparams["degree"], self.name)

    @property
    def num_basis(self) -> int:
        return self.degree + 1

    def basis(self, t: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.polynomials(t), dim=2)

    def polynomials(self, t: torch.Tensor) -> list[torch.Tensor]:
        """``[p_0(t), ..., p_D(t)]``, each shaped like ``t``."""
        raise NotImplementedError


_INPUT_MAPS = {
    "identity": lambda x: x,
    "tanh": torch.tanh,
    "clamped-tanh": lambda x: torch.clamp(torch.tanh(x), -1 + CLAMP_EPS, 1 - CLAMP_EPS),
    "sigmoid": torch.sigmoid,
}


class RecurrenceFamily(_PolynomialFamily):
    """A family whose math is its :class:`~kanseg.kernels.recurrences.Recurrence` (registered under ``name``):
    ν, p_n = (A_n·t + B_n)·p_{n−1} − C_n·p_{n−2} and the post-activation all come from there. A subclass only
    says how the layer is wired (base branch, reference layout, options) and adds learnable parameters."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if get_recurrence(self.name) is None:
            raise ValueError(f"{self.name}: no recurrence registered under this name (kanseg.kernels.recurrences)")

    @property
    def recurrence(self) -> Recurrence:
        return get_recurrence(self.name)

    def input_map(self, x):
        return _INPUT_MAPS[self.recurrence.input_map](x)

    def coefficients(self, n: int) -> tuple:
        """``(A_n, B_n, C_n)``; C_n is a 0-d tensor for a learnable recurrence (n ≥ 2)."""
        a, b, c = self.recurrence.at(n, self.hparams)
        if self.recurrence.learnable and n >= 2:
            c = getattr(self, self.recurrence.learnable)[n - 1] * c
        return a, b, c

    def polynomials(self, t):
        polys = [torch.ones_like(t)]
        for n in range(1, self.degree + 1):
            a, b, c = self.coefficients(n)
            u = t if a == 1 else a * t                     # no ×1 or +0 ops: a lean autograd graph
            u = u if b == 0 else u + b
            if n == 1:
                polys.append(u)
                continue
            if isinstance(c, torch.Tensor):
                c_p = c.to(t.dtype) * polys[-2]
            else:
                c_p = polys[-2] if c == 1 else c * polys[-2]
            polys.append(u * polys[-1] - c_p)
        return polys

    def basis(self, t):
        p = super().basis(t)
        return nn.functional.silu(p) if self.recurrence.post == "silu" else p

    # --- the lean layout (kanseg.kan.lean): p_0 = 1 is a constant map, never a tensor -----------------------------
    def constant_basis(self, dtype, device=None):
        one = torch.ones((), dtype=dtype, device=device)
        return {0: nn.functional.silu(one) if self.recurrence.post == "silu" else one}

    def basis_functions(self, t, skip=()):
        """The recurrence with p_0 kept as the scalar 1 (no ones tensor, no ×p_0 pass), post applied per map."""
        polys: list = [1.0]
        for n in range(1, self.degree + 1):
            a, b, c = self.coefficients(n)
            u = t if a == 1 else a * t
            u = u if b == 0 else u + b
            if n == 1:
                polys.append(u)
                continue
            prev2 = polys[-2]
            if isinstance(c, torch.Tensor):
                c_p = c.to(t.dtype) * prev2
            else:
                c_p = prev2 if c == 1 else c * prev2
            polys.append(u * polys[-1] - c_p)
        post = nn.functional.silu if self.recurrence.post == "silu" else (lambda p: p)
        return [post(p if isinstance(p, torch.Tensor) else torch.full_like(t, p))
                for n, p in enumerate(polys) if n not in skip]


@register_family
class GramBasis(RecurrenceFamily):
    """KAGN: ν = tanh; B = SiLU(p_n), p_n = t·p_{n-1} − β_{n-1,n}·p_{n-2} with learnable ``beta`` (D+1 scalars).

    β_{n,m} = beta[n]·(m+n)(m−n)n²(4n²−1)/m². Base branch SiLU(x); output SiLU(Norm(·)).
    ``beta`` init N(0, std = 1/(k^N·C_in·(D+1))) as in the reference.
    """

    name = "gram"
    reference_layout = "degree"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.beta = nn.Parameter(torch.zeros(self.degree + 1))
        std = 1.0 / ((self.kernel_size ** self.spatial_dims) * self.in_channels * (self.degree + 1.0))
        nn.init.normal_(self.beta, 0.0, std)


@register_family
class ChebyshevBasis(RecurrenceFamily):
    """KACN: ν = clamp(tanh x, ±(1−1e−7)); B = T_n(t) = cos(n·acos t), computed by T_n = 2t·T_{n-1} − T_{n-2}.

    No base branch; output Norm(·) without activation. The recurrence equals the reference's cos/acos form and has
    bounded gradients near ±1.
    """

    name = "chebyshev"
    base_activation = None
    post_activation = None
    eps = CLAMP_EPS


@register_family
class LegendreBasis(RecurrenceFamily):
    """KALN: ν = min-max onto [−1, 1]; B = Legendre P_n (Bonnet: (n+1)P_{n+1} = (2n+1)t·P_n − n·P_{n−1}).

    Base branch Conv(x) without activation; output SiLU(Norm(·)).

    ``input_norm="sample-minmax"`` (default) takes min/max per sample and group, with an epsilon, so samples never
    influence each other and a constant input maps to −1 instead of 0/0 (``docs/deviations.md``, deviation 2).
    ``input_norm="batch-minmax"`` takes them over the whole batch per group, exactly like the reference (the importer
    sets it).
    """

    name = "legendre"
    base_activation = "identity"
    reference_layout = "degree"
    options = {"degree": 3, "input_norm": "sample-minmax"}
    eps = 1e-6

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.hparams["input_norm"] not in ("sample-minmax", "batch-minmax"):
            raise ValueError(f"legendre: input_norm must be 'sample-minmax' or 'batch-minmax', "
                             f"got {self.hparams['input_norm']!r}")

    def input_map(self, x):
        b, g = x.shape[0], self.groups
        flat = x.reshape(b, g, -1)
        if self.hparams["input_norm"] == "batch-minmax":
            flat_g = flat.transpose(0, 1).reshape(g, -1)
            lo = flat_g.amin(dim=1).view(1, g, 1)
            hi = flat_g.amax(dim=1).view(1, g, 1)
            eps = 1e-12
        else:
            lo = flat.amin(dim=2, keepdim=True)
            hi = flat.amax(dim=2, keepdim=True)
            eps = self.eps
        t = 2 * (flat - lo) / (hi - lo).clamp_min(eps) - 1
        return t.view_as(x)


@register_family
class JacobiBasis(RecurrenceFamily):
    """KAJN: ν = tanh; B = Jacobi P_n^{(a,b)} by the standard three-term recurrence (a = b = 1 by default).

    Base branch Conv(x) without activation; output SiLU(Norm(·)).
    """

    name = "jacobi"
    base_activation = "identity"
    reference_layout = "degree"
    options = {"degree": 3, "a": 1.0, "b": 1.0}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a, self.b = float(self.hparams["a"]), float(self.hparams["b"])
        if self.a <= -1 or self.b <= -1:
            raise ValueError(f"jacobi: a and b must be > -1, got a={self.a}, b={self.b}")


@register_family
class BernsteinBasis(_PolynomialFamily):
    """KABN: ν = sigmoid; B = C(D,n)·t^n·(1−t)^{D−n}, the true Bernstein basis (they sum to 1).

    The reference's basis is identically 1 (de Casteljau started from all-ones) and its backward crashes; kanseg
    implements the real basis, so no weights are imported for this family (``docs/deviations.md``, deviation 1).
    Base branch Conv(x) without activation; output SiLU(Norm(·)).
    """

    name = "bernstein"
    base_activation = "identity"

    def input_map(self, x):
        return torch.sigmoid(x)

    def constant_basis(self, dtype, device=None):
        return {0: torch.ones((), dtype=dtype, device=device)} if self.degree == 0 else {}

    def basis_functions(self, t, skip=()):
        """C(D,n)·t^n·(1−t)^{D−n} with no ones tensors and no ×1 passes (the lean layout's slots)."""
        d = self.degree
        up, down = [None, t], [None, 1 - t]
        for _ in range(2, d + 1):
            up.append(up[-1] * t)
            down.append(down[-1] * down[1])
        out = []
        for n in range(d + 1):
            if n in skip:
                continue
            a, b = up[n] if n else None, down[d - n] if d - n else None
            term = torch.ones_like(t) if a is None and b is None else a if b is None else b if a is None else a * b
            coef = math.comb(d, n)
            out.append(term if coef == 1 else term * coef)
        return out

    def polynomials(self, t):
        d = self.degree
        # Powers by repeated products (no pow(0, 0) gradients).
        up, down = [torch.ones_like(t)], [torch.ones_like(t)]
        for _ in range(d):
            up.append(up[-1] * t)
            down.append(down[-1] * (1 - t))
        return [math.comb(d, n) * up[n] * down[d - n] for n in range(d + 1)]
