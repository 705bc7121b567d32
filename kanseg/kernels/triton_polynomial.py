"""Triton basis math of the polynomial families: every three-term recurrence of :mod:`kanseg.kernels.recurrences`
(``p_n = (A_n·t + B_n)·p_{n−1} − C_n·p_{n−2}``: one forward loop and one reverse-mode adjoint, shared with the stage-2
kernels) and Bernstein. Plugged into :mod:`kanseg.kernels.triton_expand`; see there for the ``fwd`` / ``bwd``
contract.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kanseg.kernels.recurrences import get_recurrence
from kanseg.kernels.triton_expand import MAP_IDS, MAP_SIGMOID, block_sum, load_row, store_row, zeros_like
from kanseg.kernels.triton_registry import TritonBasis, register_recurrence_kernels, register_triton_basis

#: ``K0`` of the three-term kernels: the post-activation (``Recurrence.post``) applied to every p_n.
POST_SILU, POST_NONE = 0, 1


@triton.jit
def _coefficients(prm, n: tl.constexpr, like):
    """``(A_n, B_n, C_n)`` from the ``(P, 3)`` table ``prm``."""
    a = tl.load(prm + 3 * n).to(like.dtype)
    b = tl.load(prm + 3 * n + 1).to(like.dtype)
    c = tl.load(prm + 3 * n + 2).to(like.dtype)
    return a, b, c


@triton.jit
def _step(t, p1, p0, n: tl.constexpr, prm):
    """``p_n = (A_n·t + B_n)·p_{n−1} − C_n·p_{n−2}``."""
    a, b, c = _coefficients(prm, n, t)
    return (a * t + b) * p1 - c * p0


@triton.jit
def _post(p, KIND: tl.constexpr):
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
def three_term_value(t, p1, p0, n: tl.constexpr, prm, KIND: tl.constexpr):
    """``(post(p_n), p_n)`` from ``p_{n−1}, p_{n−2}`` (both zero before n = 0), p_0 = 1."""
    if n == 0:
        raw = tl.full(t.shape, 1.0, t.dtype)
    else:
        raw = _step(t, p1, p0, n, prm)
    return _post(raw, KIND), raw


@triton.jit
def _three_term_upto(t, n: tl.constexpr, prm):
    """``(p_n, p_{n−1}, p_{n−2})`` from scratch (p_{−1} = p_{−2} = 0)."""
    zero = zeros_like(t)
    p = tl.full(t.shape, 1.0, t.dtype)
    pm1 = zero
    pm2 = zero
    for k in tl.static_range(1, n + 1):
        nxt = _step(t, p, pm1, k, prm)
        pm2 = pm1
        pm1 = p
        p = nxt
    return p, pm1, pm2


@triton.jit
def three_term_adjoint(t, n: tl.constexpr, g, a1, a2, prm, P: tl.constexpr, KIND: tl.constexpr):
    """The recurrence's backward, for n = P−1 … 0 in order (reverse mode), ``g = dL/dB_n``.

    Adjoint ā_n of p_n = g·post'(p_n) + ā_{n+1}·(A_{n+1}·t + B_{n+1}) − ā_{n+2}·C_{n+2}; returns
    ``(ā_n·A_n·p_{n−1}, ā_n, −ā_n·p_{n−2})``: the n-th term of dL/dt, the adjoint and dL/dC_n. The p's are recomputed
    (O(P²) elementwise, P is small). Both kernel stages use it."""
    p, pm1, pm2 = _three_term_upto(t, n, prm)
    adj = g * _post_grad(p, KIND)
    if n + 1 < P:
        a_next, b_next, _ = _coefficients(prm, n + 1, t)
        adj += a1 * (a_next * t + b_next)
    if n + 2 < P:
        _, _, c_next2 = _coefficients(prm, n + 2, t)
        adj -= a2 * c_next2
    grad_t = zeros_like(t)
    grad_c = zeros_like(t)
    if n >= 1:
        a_n, _, _ = _coefficients(prm, n, t)
        grad_t = adj * a_n * pm1
    if n >= 2:
        grad_c = -adj * pm2
    return grad_t, adj, grad_c


@triton.jit
def three_term_fwd(t, dst, S, mask, prm, c, C, P: tl.constexpr, KIND: tl.constexpr, LEARNABLE: tl.constexpr,
                   K2: tl.constexpr):
    p1 = zeros_like(t)
    p0 = zeros_like(t)
    for n in tl.static_range(P):
        value, p = three_term_value(t, p1, p0, n, prm, KIND)
        store_row(dst, n, S, value, mask)
        p0 = p1
        p1 = p


@triton.jit
def three_term_bwd(t, src, S, mask, prm, c, C, part, P: tl.constexpr, KIND: tl.constexpr, LEARNABLE: tl.constexpr,
                   K2: tl.constexpr):
    """dL/dt, and with ``LEARNABLE`` this block's dL/dC_n into ``part + n``."""
    grad_t = zeros_like(t)
    a1 = zeros_like(t)
    a2 = zeros_like(t)
    for n in tl.static_range(P - 1, -1, -1):
        grad_n, adj, grad_c = three_term_adjoint(t, n, load_row(src, n, S, mask, t), a1, a2, prm, P, KIND)
        grad_t += grad_n
        a2 = a1
        a1 = adj
        if LEARNABLE:
            tl.store(part + n, block_sum(grad_c))
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


@register_recurrence_kernels
class ThreeTermKernels(TritonBasis):
    """Kernels of any family registered in :mod:`kanseg.kernels.recurrences`, read from its definition.

    ``prm`` is the ``(P, 3)`` table of ``(A_n, B_n, C_n)`` (row 0 unused); a learnable C (Gram's β) is differentiable
    through it and its gradient is reduced per program (slot n of the partials). ``K0`` is the post-activation,
    ``K1`` whether C is learnable.
    """

    fwd = three_term_fwd
    bwd = three_term_bwd

    def __init__(self, family):
        super().__init__(family)
        self.name = family.name
        self.recurrence = get_recurrence(family.name)
        self.map_id = MAP_IDS[self.recurrence.input_map]
        self.torch_input_map = self.recurrence.input_map == "minmax"
        learnable = self.recurrence.learnable is not None
        self.constants = (POST_SILU if self.recurrence.post == "silu" else POST_NONE, int(learnable), 0.0)
        self.npart = self.num_basis if learnable else 0

    def kernel_params(self, family, like):
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        rows = self.recurrence.table(family.degree, family.hparams)
        table = torch.tensor(rows, dtype=dtype, device=like.device)
        if not self.npart:
            return table
        scale = getattr(family, self.recurrence.learnable)
        zero = table.new_zeros(())
        learnable = [(scale[n - 1] * rows[n][2]).to(dtype) for n in range(2, family.degree + 1)]
        c = torch.stack([zero, zero, *learnable][: family.degree + 1])
        return torch.stack([table[:, 0], table[:, 1], c], dim=1)

    def reduce(self, part):
        grad_c = part.sum(dim=(0, 1, 2))
        return torch.stack([torch.zeros_like(grad_c), torch.zeros_like(grad_c), grad_c], dim=1)


@register_triton_basis
class BernsteinKernels(TritonBasis):
    name = "bernstein"
    map_id = MAP_SIGMOID
    fwd = bernstein_fwd
    bwd = bernstein_bwd

    def kernel_params(self, family, like):
        d = family.degree
        return torch.tensor([float(math.comb(d, n)) for n in range(d + 1)], device=like.device)
