"""KAN convolutions inside MONAI networks: build the MONAI net, then swap its convolutions.

    >>> from monai.networks.nets import DynUNet, BasicUNet
    >>> net = DynUNet(2, 1, 2, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2])
    >>> swap_convs_for_kan(net, "gram", degree=3)          # every k>1 conv -> KAN conv of the same geometry
    ['input_block.conv1.conv', 'input_block.conv2.conv', ...]

Why a swap and not a factory: MONAI's networks hard-wire ``Conv[Conv.CONV, spatial_dims]`` (``Convolution``,
DynUNet's ``get_conv_layer``, ``BasicUNet``'s ``TwoConv``...); none takes a conv type, so a KAN entry registered in
MONAI's ``Conv`` factory under a new name would never be picked. The factory route would mean replacing MONAI's
global ``CONV`` entry while a network is built: process-wide state that also turns 1x1 heads and projections
into KAN layers. The swap touches one network only, works for any network made of ``nn.ConvNd`` (also those that
bypass the factory), and keeps the layers around the conv (MONAI's norm, activation, dropout) where they are.

Each swapped conv becomes a :class:`~kanseg.kan.KANConv` with the same channels, groups, kernel size, stride,
padding and dilation, and by default without its own norm and activation (``norm="none"``, ``act="identity"``:
MONAI's block already applies them after the conv; FastKAN/RBF keeps its input norm, which is its input map). A
conv with a bias gets a per-channel bias after the KAN conv. 1x1 convs (output heads, residual projections) stay
plain unless ``min_kernel_size=1``; transposed convs (upsampling) always stay.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kanseg.kan.basis import get_family
from kanseg.kan.factory import create_kan_conv, parse_family
from kanseg.kan.layers import KANConv

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class ChannelBias(nn.Module):
    """Adds a learnable bias per channel to ``(B, C, *S)`` (the bias of a swapped conv)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.view(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)


def _single(value: Any, what: str, conv: nn.Module) -> int:
    """``3`` or ``(3, 3)`` -> 3; anisotropic geometry -> ValueError (a KAN conv takes one size for every axis)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not all(isinstance(v, int) for v in values) or len(set(values)) != 1:
        raise ValueError(f"cannot make a KAN conv of {conv}: {what} {value!r} is not the same on every axis")
    return values[0]


def kan_conv_like(conv: nn.Module, family: str, norm: Any = "none", act: Any = "identity",
                  **options: Any) -> nn.Module:
    """A KAN conv of ``family`` with the geometry of ``conv`` (an ``nn.Conv{1,2,3}d``).

    Returns the :class:`~kanseg.kan.KANConv`, or ``Sequential(KANConv, ChannelBias)`` when ``conv`` has a bias.
    ``norm``, ``act``: the KAN layer's own (see :func:`~kanseg.kan.create_kan_conv`); ``options``: the family's.
    """
    if not isinstance(conv, _CONVS):
        raise TypeError(f"expected nn.Conv1d/2d/3d, got {type(conv).__name__}")
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"cannot make a KAN conv of {conv}: only explicit zero padding is supported")
    spatial_dims = conv.weight.dim() - 2
    if get_family(parse_family(family)[0]).norm_on_input and norm == "none":
        norm = None  # FastKAN's norm is its input map, not an output norm
    layer = create_kan_conv(family, spatial_dims, conv.in_channels, conv.out_channels,
                            _single(conv.kernel_size, "kernel_size", conv), stride=_single(conv.stride, "stride", conv),
                            padding=_single(conv.padding, "padding", conv),
                            dilation=_single(conv.dilation, "dilation", conv), groups=conv.groups, norm=norm,
                            act=act, **options)
    layer = layer.to(device=conv.weight.device)
    return layer if conv.bias is None else nn.Sequential(layer, ChannelBias(conv.out_channels).to(conv.weight.device))


def swap_convs_for_kan(net: nn.Module, family: str, *, min_kernel_size: int = 2, norm: Any = "none",
                       act: Any = "identity", **options: Any) -> list[str]:
    """Replace, in place, every ``nn.Conv{1,2,3}d`` of ``net`` whose kernel is at least ``min_kernel_size`` by a
    KAN conv of ``family`` with the same geometry (:func:`kan_conv_like`); return the names of the swapped convs.

    ``family``: a name of :func:`~kanseg.kan.list_families`, ``"<family>-bottleneck"`` for the bottleneck variant.
    Raises ``ValueError`` (naming the layer) for a conv a KAN conv cannot copy (anisotropic kernel, non-zero
    padding mode), before anything is changed.
    """
    targets = [(name, module) for name, module in net.named_modules()
               if isinstance(module, _CONVS) and not isinstance(module, KANConv)
               and max(module.kernel_size) >= min_kernel_size and not _inside_kan(net, name)]
    replacements = {}
    for name, conv in targets:
        try:
            replacements[name] = kan_conv_like(conv, family, norm=norm, act=act, **options)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    for name, layer in replacements.items():
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, layer)
    return list(replacements)


def _inside_kan(net: nn.Module, name: str) -> bool:
    """Whether module ``name`` belongs to a KAN layer already in ``net`` (its base or basis conv)."""
    parts = name.split(".")
    return any(isinstance(net.get_submodule(".".join(parts[:i])), KANConv) for i in range(1, len(parts)))
