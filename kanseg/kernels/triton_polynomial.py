"""Triton basis math of the polynomial families: Gram, Chebyshev, Legendre, Jacobi (one three-term recurrence
``p_n = (A_n·t + B_n)·p_{n−1} − C_n·p_{n−2}`` with its derivative) and Bernstein. Plugged into
:mod:`kanseg.kernels.triton_expand`; see there for the ``fwd`` / ``bwd`` contract.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kanseg.kernels.triton_expand import (
    MAP_CLAMPED_TANH,
    MAP_IDENTITY,
    MAP_SIGMOID,
    MAP_TANH,
    block_sum,
    load_row,
    store_row,
    zeros_like,
)
from kanseg.kernels.triton_registry import TritonBasis, register_triton_basis

GRAM_SILU = 0  # K0 of the three-term kernels: 0 applies SiLU (Gram), anything else returns p_n as is


@triton.jit
def _coefficients(prm, n: tl.constexpr, like):
    """``(A_n, B_n, C_n)`` from the ``(P, 3)`` table ``prm``."""
    a = tl.load(prm + 3 * n).to(like.dtype)
    b = tl.load(prm + 3 * n + 1).to(like.dtype)
    c = tl.load(prm + 3 * n + 2).to(like.dtype)
    return a, b, c


@triton.jit
def _step(t, p1, p0, d1, d0, n: tl.constexpr, prm):
    """``(p_n, p_n')`` from ``p_{n−1}, p_{n−2}`` and their t-derivatives (``p_{−1} = 0``)."""
    a, b, c = _coefficients(prm, n, t)
    p = (a * t + b) * p1 - c * p0
    d = a * p1 + (a * t + b) * d1 - c * d0
    return p, d


@triton.jit
def _post(p, KIND: tl.constexpr):
    """Gram applies SiLU to every polynomial."""
    if KIND == 0:
        p = p / (1.0 + tl.exp(-p))
    return p


@triton.jit
def _post_grad(p, KIND: tl.constexpr):
    if KIND == 0:
        sg = 1.0 / (1.0 + tl.exp(-p))
        d = sg * (1.0 + p * (1.0 - sg))
    else:
        d = tl.full(p.shape, 1.0, p.dtype)
    return d


@triton.jit
def three_term_fwd(t, dst, S, mask, prm, c, C, P: tl.constexpr, KIND: tl.constexpr, K1: tl.constexpr,
                   K2: tl.constexpr):
    p0 = tl.full(t.shape, 1.0, t.dtype)
    store_row(dst, 0, S, _post(p0, KIND), mask)
    if P > 1:
        zero = zeros_like(t)
        p1, d1 = _step(t, p0, zero, zero, zero, 1, prm)
        d0 = zero
        store_row(dst, 1, S, _post(p1, KIND), mask)
        for n in tl.static_range(2, P):
            p, d = _step(t, p1, p0, d1, d0, n, prm)
            store_row(dst, n, S, _post(p, KIND), mask)
            p0, p1, d0, d1 = p1, p, d1, d


@triton.jit
def _gram_coefficient_grads(t, src, S, mask, prm, part, P: tl.constexpr):
    """dL/dC_k into slot k, k = 2..P−1, by forward-mode sensitivities s_n = ∂p_n/∂C_k (O(P²), P is small)."""
    for k in tl.static_range(2, P):
        zero = zeros_like(t)
        p0 = tl.full(t.shape, 1.0, t.dtype)
        p1, _ = _step(t, p0, zero, zero, zero, 1, prm)
        s0 = zero
        s1 = zero
        acc = zero
        for n in tl.static_range(2, P):
            a, b, c = _coefficients(prm, n, t)
            p = (a * t + b) * p1 - c * p0
            s = (a * t + b) * s1 - c * s0
            if n == k:
                s = s - p0
            if n >= k:
                acc += load_row(src, n, S, mask, t) * _post_grad(p, 0) * s
            p0, p1, s0, s1 = p1, p, s1, s
        tl.store(part + k, block_sum(acc))


@triton.jit
def three_term_bwd(t, src, S, mask, prm, c, C, part, P: tl.constexpr, KIND: tl.constexpr, K1: tl.constexpr,
                   K2: tl.constexpr):
    grad_t = zeros_like(t)
    if P > 1:
        p0 = tl.full(t.shape, 1.0, t.dtype)
        d0 = zeros_like(t)
        p1, d1 = _step(t, p0, d0, d0, d0, 1, prm)
        grad_t += load_row(src, 1, S, mask, t) * _post_grad(p1, KIND) * d1
        for n in tl.static_range(2, P):
            p, d = _step(t, p1, p0, d1, d0, n, prm)
            grad_t += load_row(src, n, S, mask, t) * _post_grad(p, KIND) * d
            p0, p1, d0, d1 = p1, p, d1, d
    if KIND == 0:
        _gram_coefficient_grads(t, src, S, mask, prm, part, P)
    return grad_t


@triton.jit
def _ipow(x, n: tl.constexpr):
    y = tl.full(x.shape, 1.0, x.dtype)
    for _ in tl.static_range(n):
        y = y * x
    return y


@triton.jit
def bernstein_fwd(t, dst, S, mask, prm, c, C, P: tl.constexpr, K0: tl.constexpr, K1: tl.constexpr,
                  K2: tl.constexpr):
    """B_n = binom(D, n)·t^n·(1−t)^(D−n), binomials in ``prm``."""
    u = 1.0 - t
    for n in tl.static_range(P):
        coef = tl.load(prm + n).to(t.dtype)
        store_row(dst, n, S, coef * _ipow(t, n) * _ipow(u, P - 1 - n), mask)


@triton.jit
def bernstein_bwd(t, src, S, mask, prm, c, C, part, P: tl.constexpr, K0: tl.constexpr, K1: tl.constexpr,
                  K2: tl.constexpr):
    u = 1.0 - t
    grad_t = zeros_like(t)
    for n in tl.static_range(P):
        coef = tl.load(prm + n).to(t.dtype)
        d = zeros_like(t)
        if n > 0:
            d += n * _ipow(t, n - 1) * _ipow(u, P - 1 - n)
        if n < P - 1:
            d -= (P - 1 - n) * _ipow(t, n) * _ipow(u, P - 2 - n)
        grad_t += load_row(src, n, S, mask, t) * coef * d
    return grad_t


class _ThreeTerm(TritonBasis):
    """``prm`` is the ``(P, 3)`` table of ``(A_n, B_n, C_n)`` (row 0 unused); ``K0`` selects Gram's SiLU."""

    fwd = three_term_fwd
    bwd = three_term_bwd
    kind = 1

    @property
    def constants(self):
        return (self.kind, 0.0, 0.0)

    def recurrence(self, n: int) -> tuple[float, float, float]:
        """``(A_n, B_n, C_n)`` of the family's recurrence, n >= 1 (C_1 is unused)."""
        raise NotImplementedError

    def kernel_params(self, family, like):
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        rows = [(0.0, 0.0, 0.0)] + [self.recurrence(n) for n in range(1, family.degree + 1)]
        return torch.tensor(rows, dtype=dtype, device=like.device)


@register_triton_basis
class GramKernels(_ThreeTerm):
    """ν = tanh; SiLU(p_n); p_n = t·p_{n−1} − C_n·p_{n−2} with learnable C_n = β_{n−1,n} (from ``family.beta``),
    whose gradients are reduced per program (slot n of the partials)."""

    name = "gram"
    kind = GRAM_SILU
    map_id = MAP_TANH

    @property
    def npart(self):
        return self.num_basis

    def recurrence(self, n):
        return (1.0, 0.0, 0.0)

    def kernel_params(self, family, like):
        table = super().kernel_params(family, like)
        learnable = [family.beta_coefficient(n - 1, n).to(table.dtype) for n in range(2, family.degree + 1)]
        zero = table.new_zeros(())
        c = torch.stack([zero, zero, *learnable][: family.degree + 1])
        return torch.stack([table[:, 0], table[:, 1], c], dim=1)

    def reduce(self, part):
        grad_c = part.sum(dim=(0, 1, 2))
        return torch.stack([torch.zeros_like(grad_c), torch.zeros_like(grad_c), grad_c], dim=1)


@register_triton_basis
class ChebyshevKernels(_ThreeTerm):
    """ν = tanh clamped to ±(1−1e−7); T_n = 2t·T_{n−1} − T_{n−2}."""

    name = "chebyshev"
    map_id = MAP_CLAMPED_TANH

    def recurrence(self, n):
        return (1.0 if n == 1 else 2.0, 0.0, 1.0)


@register_triton_basis
class LegendreKernels(_ThreeTerm):
    """Bonnet recurrence. ν (min-max over a sample or the batch) is not pointwise: torch runs it first."""

    name = "legendre"
    map_id = MAP_IDENTITY
    torch_input_map = True

    def recurrence(self, n):
        return ((2 * n - 1) / n, 0.0, (n - 1) / n)


@register_triton_basis
class JacobiKernels(_ThreeTerm):
    """ν = tanh; the standard three-term recurrence of P_n^(a,b)."""

    name = "jacobi"
    map_id = MAP_TANH

    def recurrence(self, n):
        a, b = self.family.a, self.family.b
        if n == 1:
            return ((a + b + 2) / 2, (a - b) / 2, 0.0)
        s = 2 * n + a + b
        theta = s * (s - 1) / (2 * n * (n + a + b))
        theta1 = (s - 1) * (a * a - b * b) / (2 * n * (n + a + b) * (s - 2))
        theta2 = (n + a - 1) * (n + b - 1) * s / (n * (n + a + b) * (s - 2))
        return (theta, theta1, theta2)


@register_triton_basis
class BernsteinKernels(TritonBasis):
    name = "bernstein"
    map_id = MAP_SIGMOID
    fwd = bernstein_fwd
    bwd = bernstein_bwd

    def kernel_params(self, family, like):
        d = family.degree
        return torch.tensor([float(math.comb(d, n)) for n in range(d + 1)], device=like.device)
