"""Small factories picking layers by name and by ``spatial_dims`` (timm / MONAI style).

``conv_class(2)`` -> ``nn.Conv2d``; ``get_norm("instance", 2, 32)`` -> ``InstanceNorm2d(32)``;
``get_activation("silu")`` -> ``nn.SiLU()``. Norms and activations go through MONAI's ``Norm`` / ``Act``
factories, so a layer spec is a name or a ``(name, options)`` pair: ``("instance", {"affine": True})``,
``("leakyrelu", {"negative_slope": 0.1})``. Unknown names raise ``ValueError`` listing the valid ones.
"""

from __future__ import annotations

import math
from typing import Any, Union

import torch
from monai.networks.layers.factories import Act, Norm
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from torch import nn

from kanseg.kernels.conv_backward import ROUTED_CONV

_CONV = ROUTED_CONV  # nn.ConvNd subclasses whose CPU backward may take the faster forward-kernel route
_DROPOUT = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}
NORMS = ("instance", "batch", "group", "none")  # kanseg's usual names; MONAI's others are accepted too
ACTIVATIONS = ("silu", "gelu", "relu", "identity")
# A norm or activation: a name, or (name, constructor options); None = identity (or a caller's default).
LayerSpec = Union[str, tuple[str, dict[str, Any]], None]


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


def _split_spec(spec: LayerSpec, kind: str) -> tuple[str | None, dict[str, Any]]:
    """``"relu"`` -> ``("relu", {})``; ``("leakyrelu", {"negative_slope": 0.1})`` (or a 2-list, as YAML gives it)
    -> ``("leakyrelu", {...})``; names are case-insensitive."""
    if spec is None or isinstance(spec, str):
        return (None if spec is None else spec.lower()), {}
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict):
        return spec[0].lower(), dict(spec[1])
    raise ValueError(f"{kind} must be a name or a (name, options) pair, got {spec!r}")


def _valid(own: tuple[str, ...], factory) -> str:
    return ", ".join(own + tuple(sorted(n.lower() for n in factory.names if n.lower() not in own)))


def get_norm(norm: LayerSpec, spatial_dims: int, channels: int) -> nn.Module:
    """Channel-wise normalisation over ``channels`` for ``(B, C, *spatial)`` tensors, through MONAI's ``Norm``
    factory: a name or ``(name, options)``, e.g. ``("instance", {"affine": True})``.

    ``instance``: InstanceNorm, affine off, no running stats (the reference default); ``batch``: BatchNorm;
    ``group``: GroupNorm with up to 8 groups unless ``num_groups`` is given; ``none``/``None``: identity;
    any other name of MONAI's ``Norm`` factory with the options it needs.
    """
    check_spatial_dims(spatial_dims)
    name, options = _split_spec(norm, "norm")
    if name in (None, "none"):
        return nn.Identity()
    if name.upper() not in Norm.names:
        raise ValueError(f"unknown norm {name!r}; valid: {_valid(NORMS, Norm)}")
    if name == "group":
        options.setdefault("num_groups", group_norm_groups(channels))
    try:
        return get_norm_layer((name, options), spatial_dims, channels)
    except TypeError as err:
        raise ValueError(f"norm {norm!r}: {err}") from None


def get_activation(act: LayerSpec) -> nn.Module:
    """An activation module through MONAI's ``Act`` factory: a name or ``(name, options)``, e.g.
    ``("leakyrelu", {"negative_slope": 0.1})``. ``silu`` is ``nn.SiLU`` (MONAI's ``swish`` is its own module);
    ``identity``/``None``: identity."""
    name, options = _split_spec(act, "activation")
    if name in (None, "identity"):
        return nn.Identity()
    if name == "silu":
        return nn.SiLU(**options)
    if name.upper() not in Act.names:
        raise ValueError(f"unknown activation {name!r}; valid: {_valid(ACTIVATIONS, Act)}")
    try:
        return get_act_layer((name, options))
    except TypeError as err:
        raise ValueError(f"activation {act!r}: {err}") from None


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
