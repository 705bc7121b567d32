"""Triton basis math of the grid families: RBF (FastKAN) and ReLU-KAN. Plugged into
:mod:`kanseg.kernels.triton_expand`; see there for the ``fwd`` / ``bwd`` contract.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanseg.kernels.triton_expand import MAP_IDENTITY, block_sum, load_row, store_row, zeros_like
from kanseg.kernels.triton_registry import TritonBasis, register_triton_basis


@triton.jit
def gaussian(t, prm, i, H: tl.constexpr):
    """``(B_i, dB_i/dt)`` of the RBF basis: B_i = exp(−((t − centre_i)/H)²), centres in ``prm``."""
    u = (t - tl.load(prm + i).to(t.dtype)) / H
    value = tl.exp(-(u * u))
    return value, value * (-2.0 / H) * u


@triton.jit
def rbf_fwd(t, dst, S, mask, prm, c, C, P: tl.constexpr, H: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr):
    """B_i = exp(−((t − centre_i)/H)²), centres in ``prm``."""
    for i in tl.static_range(P):
        value, _ = gaussian(t, prm, i, H)
        store_row(dst, i, S, value, mask)


@triton.jit
def rbf_bwd(t, src, S, mask, prm, c, C, part, P: tl.constexpr, H: tl.constexpr, K1: tl.constexpr,
            K2: tl.constexpr):
    grad_t = zeros_like(t)
    for i in tl.static_range(P):
        value, slope = gaussian(t, prm, i, H)
        grad_t += load_row(src, i, S, mask, t) * slope
    return grad_t


@triton.jit
def relu_fwd(t, dst, S, mask, prm, c, C, P: tl.constexpr, R: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr):
    """B_i = (R·ReLU(t − l_ci)·ReLU(h_ci − t))², ``prm = [l (C, P), h (C, P)]``, c this program's channel."""
    for i in tl.static_range(P):
        low = tl.load(prm + c * P + i).to(t.dtype)
        high = tl.load(prm + C * P + c * P + i).to(t.dtype)
        y = tl.maximum(t - low, 0.0) * tl.maximum(high - t, 0.0) * R
        store_row(dst, i, S, y * y, mask)


@triton.jit
def relu_bwd(t, src, S, mask, prm, c, C, part, P: tl.constexpr, R: tl.constexpr, K1: tl.constexpr,
             K2: tl.constexpr):
    """dL/dt, and partial dL/dl_ci (slot i), dL/dh_ci (slot P + i) of this program's channel."""
    grad_t = zeros_like(t)
    for i in tl.static_range(P):
        low = tl.load(prm + c * P + i).to(t.dtype)
        high = tl.load(prm + C * P + c * P + i).to(t.dtype)
        a = tl.maximum(t - low, 0.0)
        b = tl.maximum(high - t, 0.0)
        gy = load_row(src, i, S, mask, t) * 2.0 * (a * b * R) * R   # dL/dy · dy/d(a·b)
        da = tl.where(t - low > 0, b, 0.0) * gy                      # ∂/∂a path
        db = tl.where(high - t > 0, a, 0.0) * gy                     # ∂/∂b path
        grad_t += da - db
        tl.store(part + i, block_sum(-da))
        tl.store(part + P + i, block_sum(db))
    return grad_t


@register_triton_basis
class RBFKernels(TritonBasis):
    """ν is the layer's norm (runs in torch); centres are the family's ``grid`` buffer."""

    name = "rbf"
    map_id = MAP_IDENTITY
    torch_input_map = True
    fwd = rbf_fwd
    bwd = rbf_bwd

    @property
    def constants(self):
        return (float(self.family.denominator), 0.0, 0.0)

    def kernel_params(self, family, like):
        return family.grid


@register_triton_basis
class ReLUKernels(TritonBasis):
    """No input map; learnable ``phase_low`` / ``phase_high`` ``(C, P)`` per channel."""

    name = "relu"
    map_id = MAP_IDENTITY
    fwd = relu_fwd
    bwd = relu_bwd

    @property
    def constants(self):
        return (float(self.family.r), 0.0, 0.0)

    @property
    def npart(self):
        return 2 * self.num_basis

    def kernel_params(self, family, like):
        return torch.cat([family.phase_low.reshape(-1), family.phase_high.reshape(-1)])

    def reduce(self, part):
        c, p = part.shape[1], self.num_basis
        return part.sum(dim=(0, 2)).view(c, 2, p).transpose(0, 1).reshape(-1)
