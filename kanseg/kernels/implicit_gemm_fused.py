"""A whole KAN conv layer's two branches in one implicit-GEMM pass: ``conv(B(ν(x)), W_basis) + conv(φ(x), W_base)``.

Opt-in (stage 2 only, ``backend="implicit_gemm"``): nothing calls it automatically, and ``KANConv`` is unchanged.
The base conv runs as one more "basis function" of the stage-2 kernels (see
:mod:`kanseg.kernels.implicit_gemm_kernels`): its weight is appended as function ``P`` of every input channel, so x is
read once for both branches, in forward and in both backward GEMMs, and the input gradient includes
``W_baseᵀ·g · φ'(x)``. Fusable (:func:`fusable`): φ in :data:`~kanseg.kernels.implicit_gemm.BASE_ACTIVATIONS`
(``nn.Identity``, ``nn.SiLU``), a stage-2 family whose input map runs in the kernel (so the kernel sees the raw x:
Gram, Chebyshev, Jacobi, not Legendre's min-max nor RBF's norm), a plain basis conv, and a base conv of the same
geometry and kernel size. Anything else falls back to the two branches computed apart, with the same result.

    >>> # == layer.basis_branch(x) + layer.base_conv(layer.base_act(x)) for a non-bottleneck layer
    >>> y = kanseg.kernels.kan_conv_fused(x, layer.basis, layer.basis_conv, layer.base_act, layer.base_conv,
    ...                                   layer.dropout)
"""

from __future__ import annotations

import torch
from torch import nn

from kanseg.kernels.dispatch import (
    activation_conv,
    basis_conv,
    conv_compute_dtype,
    dropout_scale,
    triton_available,
)
from kanseg.kernels.expand_conv import ConvGeometry
from kanseg.kernels.stage2_table import stage2_family_names

_ACTIVATIONS = {nn.Identity: "identity", nn.SiLU: "silu"}


def _base_activation(act: nn.Module) -> str | None:
    return _ACTIVATIONS.get(type(act))


def fusable(family: nn.Module, conv: nn.Module, act: nn.Module, base_conv: nn.Module) -> bool:
    """Whether :func:`kan_conv_fused` runs both branches in one kernel pass (else it computes them apart)."""
    if family.name not in stage2_family_names() or _base_activation(act) is None or not triton_available():
        return False
    from kanseg.kernels.triton_families import get_triton_basis  # imports triton only here

    geometry, spec = ConvGeometry.of(conv), get_triton_basis(family)
    if geometry is None or ConvGeometry.of(base_conv) != geometry or spec.torch_input_map:
        return False
    c_out, cgp, *kernel = conv.weight.shape
    return tuple(base_conv.weight.shape) == (c_out, cgp // spec.num_basis, *kernel)


def _joint_weight(basis_weight: torch.Tensor, base_weight: torch.Tensor) -> torch.Tensor:
    """``(C_out, Cg·P, *k)`` and ``(C_out, Cg, *k)`` -> ``(C_out, Cg·(P+1), *k)``: the base weight as function P."""
    c_out, cg = base_weight.shape[:2]
    split = basis_weight.reshape(c_out, cg, -1, *basis_weight.shape[2:])
    return torch.cat([split, base_weight.to(basis_weight.dtype).unsqueeze(2)], 2).reshape(c_out, -1,
                                                                                        *basis_weight.shape[2:])


def kan_conv_fused(x: torch.Tensor, family: nn.Module, conv: nn.Module, act: nn.Module, base_conv: nn.Module,
                   dropout: nn.Module | None = None, *, backend: str = "implicit_gemm") -> torch.Tensor:
    """Both branches of a non-bottleneck KAN conv layer: ``(B, C, *S) -> (B, C_out, *S')``.

    Args:
        x: the layer input (the basis and the base branch read the same x: no bottleneck).
        family, conv, dropout: as for :func:`~kanseg.kernels.basis_conv` (``conv`` the basis conv).
        act, base_conv: the base branch ``base_conv(act(x))``.
        backend: ``"implicit_gemm"`` fuses both branches into one pass when :func:`fusable`; any other
            :data:`~kanseg.kernels.BACKENDS` entry (or an unfusable layer) computes the branches apart with
            :func:`~kanseg.kernels.basis_conv` and :func:`~kanseg.kernels.activation_conv`.
    Differentiable in x, both weights and the family's parameters (not twice).
    """
    if backend != "implicit_gemm" or not fusable(family, conv, act, base_conv):
        return basis_conv(x, family, conv, dropout, backend=backend) + activation_conv(x, act, base_conv)
    from kanseg.kernels.implicit_gemm import ImplicitGemmConv, ImplicitGemmPlan  # imports triton only here
    from kanseg.kernels.triton_expander import TritonExpander

    names = [n for n, _ in family.named_parameters()]
    params = [p for _, p in family.named_parameters()]
    conv_dtype = conv_compute_dtype(x)
    plan = ImplicitGemmPlan(TritonExpander(family, names, conv_dtype), ConvGeometry.of(conv), conv_dtype,
                            base_act=_base_activation(act))
    weight = _joint_weight(conv.weight, base_conv.weight)
    return ImplicitGemmConv.apply(x, weight, dropout_scale(dropout, x), plan, *params)
