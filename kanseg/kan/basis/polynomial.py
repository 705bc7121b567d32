"""Polynomial families: Gram (KAGN), Chebyshev (KACN), Legendre (KALN), Jacobi (KAJN), Bernstein (KABN).

Every ``basis`` maps ``t`` of shape ``(B, C, *S)`` to ``(B, C, D+1, *S)``: P = degree + 1 functions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kanseg.kan.basis.base import BasisFamily, check_nonneg_int, register_family


class _PolynomialFamily(BasisFamily):
    options = {"degree": 3}

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


def three_term(t: torch.Tensor, degree: int, p1, step) -> list[torch.Tensor]:
    """Polynomials from a three-term recurrence: ``p_0 = 1``, ``p_1 = p1(t)``, ``p_n = step(n, t, p_{n-1}, p_{n-2})``."""
    polys = [torch.ones_like(t)]
    if degree >= 1:
        polys.append(p1(t))
    for n in range(2, degree + 1):
        polys.append(step(n, t, polys[-1], polys[-2]))
    return polys


@register_family
class GramBasis(_PolynomialFamily):
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

    def input_map(self, x):
        return torch.tanh(x)

    def beta_coefficient(self, n: int, m: int) -> torch.Tensor:
        return self.beta[n] * ((m + n) * (m - n) * n**2 * (4.0 * n**2 - 1.0) / m**2)

    def polynomials(self, t):
        step = lambda n, t, p1, p0: t * p1 - self.beta_coefficient(n - 1, n).to(t.dtype) * p0  # noqa: E731
        return three_term(t, self.degree, lambda t: t, step)

    def basis(self, t):
        return nn.functional.silu(super().basis(t))


@register_family
class ChebyshevBasis(_PolynomialFamily):
    """KACN: ν = clamp(tanh x, ±(1−1e−7)); B = T_n(t) = cos(n·acos t), computed by T_n = 2t·T_{n-1} − T_{n-2}.

    No base branch; output Norm(·) without activation. The recurrence equals the reference's cos/acos form and has
    bounded gradients near ±1.
    """

    name = "chebyshev"
    base_activation = None
    post_activation = None
    eps = 1e-7

    def input_map(self, x):
        return torch.clamp(torch.tanh(x), -1 + self.eps, 1 - self.eps)

    def polynomials(self, t):
        return three_term(t, self.degree, lambda t: t, lambda n, t, p1, p0: 2 * t * p1 - p0)


@register_family
class LegendreBasis(_PolynomialFamily):
    """KALN: ν = min-max onto [−1, 1]; B = Legendre P_n (Bonnet: (n+1)P_{n+1} = (2n+1)t·P_n − n·P_{n−1}).

    Base branch Conv(x) without activation; output SiLU(Norm(·)).

    Deviation 2 of the spec: ``input_norm="sample-minmax"`` (default) takes min/max per sample and group, with an
    epsilon, so samples never influence each other and a constant input maps to −1 instead of 0/0.
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

    def polynomials(self, t):
        step = lambda n, t, p1, p0: ((2 * n - 1) * t * p1 - (n - 1) * p0) / n  # noqa: E731
        return three_term(t, self.degree, lambda t: t, step)


@register_family
class JacobiBasis(_PolynomialFamily):
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

    def input_map(self, x):
        return torch.tanh(x)

    def polynomials(self, t):
        a, b = self.a, self.b

        def step(n, t, p1, p0):
            s = 2 * n + a + b
            theta = s * (s - 1) / (2 * n * (n + a + b))
            theta1 = (s - 1) * (a * a - b * b) / (2 * n * (n + a + b) * (s - 2))
            theta2 = (n + a - 1) * (n + b - 1) * s / (n * (n + a + b) * (s - 2))
            return (theta * t + theta1) * p1 - theta2 * p0

        return three_term(t, self.degree, lambda t: ((a - b) + (a + b + 2) * t) / 2, step)


@register_family
class BernsteinBasis(_PolynomialFamily):
    """KABN: ν = sigmoid; B = C(D,n)·t^n·(1−t)^{D−n}, the true Bernstein basis (they sum to 1).

    Deviation 1 of the spec: the reference's basis is identically 1 (de Casteljau started from all-ones) and its
    backward crashes; kanseg implements the real basis, so no weights are imported for this family.
    Base branch Conv(x) without activation; output SiLU(Norm(·)).
    """

    name = "bernstein"
    base_activation = "identity"

    def input_map(self, x):
        return torch.sigmoid(x)

    def polynomials(self, t):
        d = self.degree
        # Powers by repeated products (no pow(0, 0) gradients).
        up, down = [torch.ones_like(t)], [torch.ones_like(t)]
        for _ in range(d):
            up.append(up[-1] * t)
            down.append(down[-1] * (1 - t))
        return [math.comb(d, n) * up[n] * down[d - n] for n in range(d + 1)]
