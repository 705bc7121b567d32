"""Small dimension-generic parts shared by the templates: upsampling, attention gate, pad/crop, norms."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kanseg.kan.factories import LayerSpec, conv_class, get_norm

UPSAMPLE_MODES = ("linear", "nearest", "transpose")
_UPSAMPLE_ALIASES = {"bilinear": "linear", "trilinear": "linear"}
_LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check_upsample_mode(mode: str) -> str:
    """Canonical upsampling mode (``bilinear``/``trilinear`` are aliases of ``linear``)."""
    mode = _UPSAMPLE_ALIASES.get(mode, mode)
    if mode not in UPSAMPLE_MODES:
        valid = ", ".join(UPSAMPLE_MODES + tuple(_UPSAMPLE_ALIASES))
        raise ValueError(f"unknown upsample mode {mode!r}; valid: {valid}")
    return mode


class Upsample(nn.Module):
    """Upsample ``(B, C, *S)`` to ``(B, C, *size)``, channels unchanged.

    ``linear``: N-linear interpolation with ``align_corners=True`` (what ``nn.UpsamplingBilinear2d`` does, as in
    the reference UKAGNet); ``nearest``; ``transpose``: a learned stride-2 transposed convolution (sizes must be
    exactly twice the input, which the templates guarantee by padding).
    """

    def __init__(self, spatial_dims: int, channels: int, mode: str = "linear"):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.mode = check_upsample_mode(mode)
        self.conv = None
        if self.mode == "transpose":
            conv_t = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[spatial_dims]
            self.conv = conv_t(channels, channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor, size: torch.Size | tuple[int, ...]) -> torch.Tensor:
        if self.conv is not None:
            return self.conv(x)
        if self.mode == "nearest":
            return F.interpolate(x, size=tuple(size), mode="nearest")
        return F.interpolate(x, size=tuple(size), mode=_LINEAR_MODE[self.spatial_dims], align_corners=True)


class AttentionGate(nn.Module):
    """Additive attention gate of Attention U-Net (Oktay et al. 2018), at the skip's resolution.

    ``alpha = sigmoid(psi(relu(W_x skip + W_g gate)))`` with 1x1 convs; returns ``skip * alpha``.

    Shapes: ``skip (B, C_skip, *S)``, ``gate (B, C_gate, *S)`` -> ``(B, C_skip, *S)``; ``alpha (B, 1, *S)``.
    """

    def __init__(self, spatial_dims: int, skip_channels: int, gate_channels: int, inter_channels: int | None = None,
                 norm: LayerSpec = "batch"):
        super().__init__()
        conv = conv_class(spatial_dims)
        inter = inter_channels or max(skip_channels // 2, 1)
        self.w_skip = nn.Sequential(conv(skip_channels, inter, 1), get_norm(norm, spatial_dims, inter))
        self.w_gate = nn.Sequential(conv(gate_channels, inter, 1), get_norm(norm, spatial_dims, inter))
        self.psi = nn.Sequential(conv(inter, 1, 1), get_norm(norm, spatial_dims, 1), nn.Sigmoid())

    def attention(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The attention map ``alpha`` in (0, 1), shape ``(B, 1, *S)``."""
        return self.psi(torch.relu(self.w_skip(skip) + self.w_gate(gate)))

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.attention(skip, gate)


class Float64StatsNorm(nn.Module):
    """GroupNorm over ``(B, C, *S)`` (``groups == C``: InstanceNorm) with mean and variance in float64; result,
    scale and shift in the input's dtype. What ONNX export puts in place of those norms (``kanseg.export``):
    onnxruntime sums float32 reductions without compensation, far less accurately than PyTorch's own norms."""

    def __init__(self, groups: int, channels: int, eps: float, weight: nn.Parameter | None = None,
                 bias: nn.Parameter | None = None):
        super().__init__()
        self.groups, self.channels, self.eps = groups, channels, eps
        self.weight, self.bias = weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.to(torch.float64).reshape(x.shape[0], self.groups, -1)
        centred = z - z.mean(dim=-1, keepdim=True)
        variance = (centred * centred).mean(dim=-1, keepdim=True)
        y = (centred * torch.rsqrt(variance + self.eps)).reshape(x.shape).to(x.dtype)
        if self.weight is not None:
            shape = (1, self.channels) + (1,) * (x.dim() - 2)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the spatial dims of ``(B, C, *S)`` at the end up to a multiple of ``multiple``.

    Returns the padded tensor and the original spatial size (for :func:`crop_to`). While tracing
    (``torch.jit.trace``, ONNX export) the pad is always applied with amounts computed from the traced sizes, so the
    exported graph accepts any input size instead of the one it was traced with.
    """
    size = tuple(x.shape[2:])
    tracing = torch.jit.is_tracing()
    if tracing:
        extra = [(multiple - s % multiple) % multiple for s in size]
    else:
        extra = [math.ceil(s / multiple) * multiple - s for s in size]
        if not any(extra):
            return x, size
    pad: list = []
    for e in reversed(extra):  # F.pad lists the last dim first
        pad += [0, e]
    return F.pad(x, pad), size


def crop_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Crop ``(B, C, *S')`` back to ``(B, C, *size)`` (the corner :func:`pad_to_multiple` kept)."""
    if not torch.jit.is_tracing() and tuple(x.shape[2:]) == tuple(size):
        return x
    return x[(slice(None), slice(None)) + tuple(slice(0, s) for s in size)]
