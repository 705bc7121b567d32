"""Basis math of the implicit-GEMM KAN conv (stage 2), built from stage 1's Triton device functions.

The conv kernels (:mod:`kanseg.kernels.implicit_gemm_kernels`) evaluate the basis on a ``(rows, channels)`` tile ``t``
of ν(x) and feed one basis function at a time to ``tl.dot``. A family provides two ``@triton.jit`` functions:

- ``value(t, p1, p0, n, prm, K0) -> (B_n, state_n)``: basis function ``n`` (a compile-time constant, called for
  n = 0, 1, … in order) from the two previous states (``p_{n−1}, p_{n−2}``; both zero before n = 0);
- ``adjoint(t, n, g, a1, a2, prm, P, K0) -> (dL/dt part, adjoint_n, coefficient tile)``: called for
  n = P−1, …, 0 in order with ``g = dL/dB_n`` and the adjoints of the next two states; reverse-mode through the
  three-term recurrence, so dL/dt and the learnable coefficients' gradient (Gram: ``dL/dC_n`` = tile sum) cost
  O(P) tiles of state, never the expanded gradient.

Everything else (the input map, ``prm``, partial reduction) is stage 1's :class:`~kanseg.kernels.triton_registry.
TritonBasis` of the family.
"""

from __future__ import annotations

import triton
import triton.language as tl

from kanseg.kernels.triton_expand import zeros_like
from kanseg.kernels.triton_grid import gaussian
from kanseg.kernels.triton_polynomial import _coefficients, _post, _post_grad, _step
from kanseg.kernels.triton_registry import TritonBasis


@triton.jit
def three_term_value(t, p1, p0, n: tl.constexpr, prm, KIND: tl.constexpr):
    """``(post(p_n), p_n)`` of ``p_n = (A_n·t + B_n)·p_{n−1} − C_n·p_{n−2}``, p_0 = 1 (Gram's post is SiLU)."""
    if n == 0:
        raw = tl.full(t.shape, 1.0, t.dtype)
    else:
        raw, _ = _step(t, p1, p0, p0, p0, n, prm)
    return _post(raw, KIND), raw


@triton.jit
def _three_term_upto(t, n: tl.constexpr, prm):
    """``(p_n, p_{n−1}, p_{n−2})`` from scratch (p_{−1} = p_{−2} = 0)."""
    zero = zeros_like(t)
    p = tl.full(t.shape, 1.0, t.dtype)
    pm1 = zero
    pm2 = zero
    for k in tl.static_range(1, n + 1):
        nxt, _ = _step(t, p, pm1, zero, zero, k, prm)
        pm2 = pm1
        pm1 = p
        p = nxt
    return p, pm1, pm2


@triton.jit
def three_term_adjoint(t, n: tl.constexpr, g, a1, a2, prm, P: tl.constexpr, KIND: tl.constexpr):
    """Adjoint ā_n of p_n = g·post'(p_n) + ā_{n+1}·(A_{n+1}·t + B_{n+1}) − ā_{n+2}·C_{n+2}; dL/dt gets
    ā_n·A_n·p_{n−1}, dL/dC_n gets −ā_n·p_{n−2}. The p's are recomputed (O(P²) elementwise, P is small)."""
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
def rbf_value(t, p1, p0, n: tl.constexpr, prm, H: tl.constexpr):
    value, _ = gaussian(t, prm, n, H)
    return value, value


@triton.jit
def rbf_adjoint(t, n: tl.constexpr, g, a1, a2, prm, P: tl.constexpr, H: tl.constexpr):
    _, slope = gaussian(t, prm, n, H)
    zero = zeros_like(t)
    return g * slope, zero, zero


#: family name -> (value, adjoint); the families stage 2 supports.
STAGE2_BASES = {
    "chebyshev": (three_term_value, three_term_adjoint),
    "gram": (three_term_value, three_term_adjoint),
    "jacobi": (three_term_value, three_term_adjoint),
    "legendre": (three_term_value, three_term_adjoint),
    "rbf": (rbf_value, rbf_adjoint),
}


def stage2_functions(spec: TritonBasis):
    """``(value, adjoint)`` of a stage-1 family spec; ``ValueError`` listing the supported families otherwise."""
    try:
        return STAGE2_BASES[spec.name]
    except KeyError:
        raise ValueError(f"no implicit-GEMM kernels for KAN family {spec.name!r}; "
                         f"valid: {', '.join(sorted(STAGE2_BASES))}") from None
