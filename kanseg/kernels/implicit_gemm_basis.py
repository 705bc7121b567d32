"""Basis math of the implicit-GEMM KAN conv (stage 2), built from stage 1's Triton device functions.

The conv kernels (:mod:`kanseg.kernels.implicit_gemm_kernels`) evaluate the basis on a ``(rows, channels)`` tile ``t``
of ν(x) and feed one basis function at a time to ``tl.dot``. A family provides two ``@triton.jit`` functions:

- ``value(t, p1, p0, n, prm, K0) -> (B_n, state_n)``: basis function ``n`` (a compile-time constant, called for
  n = 0, 1, … in order) from the two previous states (``p_{n−1}, p_{n−2}``; both zero before n = 0);
- ``adjoint(t, n, g, a1, a2, prm, P, K0) -> (dL/dt part, adjoint_n, coefficient tile)``: called for
  n = P−1, …, 0 in order with ``g = dL/dB_n`` and the adjoints of the next two states (reverse mode), so dL/dt and
  the learnable coefficients' gradient (Gram: ``dL/dC_n`` = tile sum) cost O(P) tiles of state, never the expanded
  gradient.

The three-term recurrences use stage 1's ``three_term_value`` / ``three_term_adjoint``
(:mod:`kanseg.kernels.triton_polynomial`, one definition for both stages); RBF's are here.

Everything else (the input map, ``prm``, partial reduction) is stage 1's :class:`~kanseg.kernels.triton_registry.
TritonBasis` of the family.
"""

from __future__ import annotations

import triton
import triton.language as tl

from kanseg.kernels.triton_expand import zeros_like
from kanseg.kernels.triton_grid import gaussian
from kanseg.kernels.recurrences import get_recurrence
from kanseg.kernels.stage2_table import stage2_family_names
from kanseg.kernels.triton_polynomial import three_term_adjoint, three_term_value
from kanseg.kernels.triton_registry import TritonBasis


@triton.jit
def rbf_value(t, p1, p0, n: tl.constexpr, prm, H: tl.constexpr):
    value, _ = gaussian(t, prm, n, H)
    return value, value


@triton.jit
def rbf_adjoint(t, n: tl.constexpr, g, a1, a2, prm, P: tl.constexpr, H: tl.constexpr):
    _, slope = gaussian(t, prm, n, H)
    zero = zeros_like(t)
    return g * slope, zero, zero


#: family name -> (value, adjoint) of the hand-written stage-2 families; every three-term recurrence of
#: :mod:`kanseg.kernels.recurrences` uses stage 1's ``(three_term_value, three_term_adjoint)``.
STAGE2_BASES = {"rbf": (rbf_value, rbf_adjoint)}


def stage2_functions(spec: TritonBasis):
    """``(value, adjoint)`` of a stage-1 family spec; ``ValueError`` listing the supported families otherwise."""
    if get_recurrence(spec.name) is not None:
        return three_term_value, three_term_adjoint
    try:
        return STAGE2_BASES[spec.name]
    except KeyError:
        raise ValueError(f"no implicit-GEMM kernels for KAN family {spec.name!r}; "
                         f"valid: {', '.join(stage2_family_names())}") from None
