"""Small factories picking layers by name and by ``spatial_dims`` (timm / MONAI style).

``conv_class(2)`` -> ``nn.Conv2d``; ``get_norm("instance", 2, 32)`` -> ``InstanceNorm2d(32)``;
``get_activation("silu")`` -> ``nn.SiLU()``. Unknown names raise ``ValueError`` listing the valid ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kanseg.kernels.conv_backward import ROUTED_CONV

_CONV = ROUTED_CONV  # nn.ConvNd subclasses whose CPU backward may take the faster forward-kernel route
_DROPOUT = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}
NORMS = ("instance", "batch", "group", "none")
ACTIVATIONS = ("silu", "gelu", "relu", "identity")


def check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in _CONV:
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    return spatial_dims


def conv_class(spatial_dims: int) -> type[nn.Module]:
    """``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d`` (subclasses: same parameters and forward; on CPU their
    backward may take the forward-kernel route, :mod:`kanseg.kernels.conv_backward`)."""
    return _CONV[check_spatial_dims(spatial_dims)]


def dropout_layer(spatial_dims: int, p: float) -> nn.Module | None:
    """Channel dropout (``DropoutNd``) or ``None`` when ``p == 0``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")
    return _DROPOUT[check_spatial_dims(spatial_dims)](p) if p > 0 else None


def group_norm_groups(channels: int, max_groups: int = 8) -> int:
    """Number of GroupNorm groups: the largest divisor of ``channels`` that is <= ``max_groups``."""
    return math.gcd(channels, max_groups)


def get_norm(name: str, spatial_dims: int, channels: int) -> nn.Module:
    """Channel-wise normalisation over ``channels`` for ``(B, C, *spatial)`` tensors.

    ``instance``: InstanceNorm, affine off, no running stats (the reference default);
    ``batch``: BatchNorm; ``group``: GroupNorm with up to 8 groups; ``none``: identity.
    """
    check_spatial_dims(spatial_dims)
    if name == "instance":
        return {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[spatial_dims](channels)
    if name == "batch":
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[spatial_dims](channels)
    if name == "group":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    if name in ("none", None):
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}; valid: {', '.join(NORMS)}")


def get_activation(name: str | None) -> nn.Module:
    """``silu``, ``gelu``, ``relu`` or ``identity``/``None``."""
    if name in (None, "identity"):
        return nn.Identity()
    table = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return table[name]()


class GroupPReLU(nn.Module):
    """PReLU with one learnable slope per channel group (the reference B-spline layer's ``prelus``).

    Input ``(B, C, *spatial)`` with ``C = groups * channels_per_group``; slope ``weight[g]`` applies to group g.
    """

    def __init__(self, groups: int, channels: int, init: float = 0.25):
        super().__init__()
        self.groups = groups
        self.channels = channels
        self.weight = nn.Parameter(torch.full((groups,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope = self.weight.repeat_interleave(self.channels // self.groups)
        slope = slope.view(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)
        return torch.where(x >= 0, x, slope * x)
