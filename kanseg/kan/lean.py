"""The lean compute layout of a polynomial KAN layer: the same function with fewer multiply-adds.

Every three-term recurrence starts at p_0 = 1, so its basis map B_0 = post(1) = κ does not depend on the input. The
reference layer still expands it into C channels of the expanded tensor and convolves them. Its share of the basis
conv is ``Conv(κ·1, W_0) = Conv(1_G, κ·Σ_i W_0[:, i])``: a convolution of a single ``(1, G, *S)`` tensor of ones
(G = groups), broadcast over the batch. Zero padding makes it position dependent at the borders, and the ones-conv
reproduces that exactly. The expanded tensor loses one channel in P, the basis conv one P-th of its multiply-adds:
a degree-3 Gram layer drops from 5 to 4 conv-equivalents (base conv included), a Chebyshev layer from 4 to 3. The
lean expansion also builds the recurrence without a ones tensor and Bernstein's powers without ×1 passes
(:meth:`~kanseg.kan.basis.base.BasisFamily.basis_functions`). Parameters and state dict keep the reference layout;
values equal the reference up to float summation order.

Taken by ``KANSEG_KERNELS=fused`` and ``auto`` whenever the torch backend computes the expansion (CPU, or CUDA
without Triton); ``KANSEG_KERNELS=eager`` keeps the reference computation. Under the fused path the lean expansion
is the expander of :class:`~kanseg.kernels.ExpandConv`, so the expanded tensor is still never saved for backward.

Merging the base branch into the basis conv (φ(x) as one more slot, one conv call) was measured too and dropped: on
a 2-core CPU it was 3–12 % slower in 2D and at most 3 % faster in 3D (``benchmarks/README.md`` section 2).
"""

from __future__ import annotations

import torch
from torch import nn

from kanseg import kernels
from kanseg.kernels.dispatch import conv_compute_dtype, dropout_scale


def supports_lean(layer: nn.Module) -> bool:
    """Whether ``layer`` (a :class:`~kanseg.kan.KANConv`) can take the lean layout at all (its wiring, not the
    input): a polynomial family, a plain zero-padded basis conv, and no dropout on single basis maps."""
    return (getattr(layer.basis, "supports_lean", False) and layer._fusable
            and layer.dropout_placement != "degree" and kernels.ConvGeometry.of(layer.basis_conv) is not None)


def lean_weight(layer: nn.Module, constants: dict[int, torch.Tensor]) -> torch.Tensor | None:
    """The basis conv weight without the columns of the ``constants`` maps (``family.constant_basis``):
    ``(C_out, I_g·K, *k)`` for the K non-constant maps; ``None`` when every map is constant (degree 0)."""
    family, w = layer.basis, layer.basis_conv.weight
    keep = [n for n in range(family.num_basis) if n not in constants]
    if not keep:
        return None
    if len(keep) == family.num_basis:
        return w
    view = w.view(w.shape[0], -1, family.num_basis, *w.shape[2:])            # (C_out, I_g, P, *k)
    contiguous = keep == list(range(keep[0], keep[-1] + 1))
    return (view[:, :, keep[0]:keep[-1] + 1] if contiguous else view[:, :, keep]).flatten(1, 2)


def constant_map(layer: nn.Module, z: torch.Tensor, constants: dict[int, torch.Tensor]) -> torch.Tensor | None:
    """The ``constants`` maps' share of the basis conv, ``(1, C_out, *S')`` (broadcast over the batch); ``None``
    when there are none."""
    if not constants:
        return None
    family, w = layer.basis, layer.basis_conv.weight
    view = w.view(w.shape[0], -1, family.num_basis, *w.shape[2:])
    folded = sum(value * view[:, :, n] for n, value in constants.items()).sum(dim=1, keepdim=True)  # (C_out, 1, *k)
    ones = torch.ones(1, family.groups, *z.shape[2:], dtype=w.dtype, device=z.device)
    return layer.basis_conv._conv_forward(ones, folded, None)


def _expansion(layer: nn.Module, z: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """The lean expanded tensor in fp32 (fp64 for fp64 ``z``): ``(B, C, *S) -> (B, C·K, *S)``, channel-major,
    the non-constant maps B_n(scale·ν(z))."""
    family = layer.basis
    t = family.input_map(z if z.dtype == torch.float64 else z.float())
    if scale is not None:
        t = t * scale
    maps = family.basis_functions(t, skip=tuple(family.constant_basis(t.dtype)))
    return torch.stack(maps, dim=2).flatten(1, 2)


def lean_basis_branch(layer: nn.Module, z: torch.Tensor, fused: bool) -> torch.Tensor:
    """The basis conv of ``layer`` on ``z`` (after ``inner_proj``): ``(B, C, *S) -> (B, C_out', *S')``.

    ``fused``: run the lean expansion inside :class:`~kanseg.kernels.ExpandConv` (recomputed in backward, never
    saved); otherwise as plain autograd ops.
    """
    w = layer.basis_conv.weight
    constants = layer.basis.constant_basis(w.dtype, w.device)
    weight = lean_weight(layer, constants)
    scale = dropout_scale(layer.dropout, z) if layer.dropout_placement == "poly" else None
    y = None
    if weight is not None and fused:
        family = layer.basis
        names = [f"basis.{n}" for n, _ in family.named_parameters()]
        params = [p for _, p in family.named_parameters()]
        plan = kernels.ExpandConvPlan(kernels.TorchExpander(layer, _expansion, names),
                                      kernels.ConvGeometry.of(layer.basis_conv), conv_compute_dtype(z))
        y = kernels.ExpandConv.apply(z, weight, scale, plan, *params)
    elif weight is not None:
        autocast_on = torch.is_autocast_enabled(z.device.type)
        with torch.autocast(device_type=z.device.type, enabled=False):
            expanded = _expansion(layer, z, scale)
        if not (autocast_on or z.dtype == torch.float64):
            expanded = expanded.to(z.dtype)
        y = layer.basis_conv._conv_forward(expanded, weight, None)
    const = constant_map(layer, z, constants)
    if const is None:
        return y
    return const.expand(z.shape[0], *const.shape[1:]) if y is None else y + const
