"""Block registry: the unit a template stacks at every level, chosen by name.

A block is ``n_convs`` convolution layers (the first one may be strided) with an optional residual shortcut:

* ``conv``: the classic baseline, Conv-Norm-Act per layer (BatchNorm + ReLU by default).
* ``kan:<family>``: KAN convolutions of any family of :mod:`kanseg.kan` (``kan:gram``, ``kan:chebyshev``...);
  each layer already carries its family's norm and activation.
* ``kan:<family>-bottleneck``: the parameter-efficient bottleneck variant of the same family.

    >>> block = create_block("kan:gram", spatial_dims=2, in_channels=8, out_channels=16, stride=2, degree=3)
    >>> block(torch.randn(1, 8, 32, 32)).shape
    torch.Size([1, 16, 16, 16])

Options common to all blocks: ``kernel_size``, ``n_convs``, ``residual``, ``norm``, ``act``, ``dropout``; ``norm``
and ``act`` are names or ``(name, options)`` pairs of MONAI's factories (``("instance", {"affine": True})``).
KAN blocks also take their family's options (``degree``, ``grid_size``, ``dim_reduction``...).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.kan.factories import LayerSpec, conv_class, dropout_layer, get_activation, get_norm

KAN_PREFIX = "kan:"
BOTTLENECK_SUFFIX = "-bottleneck"
COMMON_OPTIONS = ("kernel_size", "n_convs", "residual", "norm", "act", "dropout")


class ModelConfigError(KansegError, ValueError):
    """A model built with a bad configuration (unknown name, option or size); one clear line."""


def list_blocks() -> list[str]:
    """Every valid block name: ``conv``, ``kan:<family>`` and ``kan:<family>-bottleneck``."""
    from kanseg.kan import list_families

    families = list_families()
    return ["conv"] + [KAN_PREFIX + f for f in families] + [KAN_PREFIX + f + BOTTLENECK_SUFFIX for f in families]


class ConvNormAct(nn.Sequential):
    """Conv (no bias) -> Norm -> Act -> channel Dropout: ``(B, C_in, *S) -> (B, C_out, *S / stride)``."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, norm: LayerSpec = "batch", act: LayerSpec = "relu", dropout: float = 0.0):
        layers = [
            conv_class(spatial_dims)(in_channels, out_channels, kernel_size, stride=stride,
                                     padding=kernel_size // 2, bias=False),
            get_norm(norm, spatial_dims, out_channels),
            get_activation(act),
        ]
        drop = dropout_layer(spatial_dims, dropout)
        super().__init__(*layers, *([drop] if drop is not None else []))


class ConvBlock(nn.Module):
    """A stack of conv layers with an optional residual shortcut.

    ``(B, C_in, *S) -> (B, C_out, *S / stride)``: ``y = layers(x) [+ shortcut(x)]``; the shortcut is the
    identity when shapes match, a strided 1x1 convolution otherwise.

    Args:
        layers: the layers in order; only the first may change resolution.
        shortcut: ``None`` for no residual connection.
    """

    def __init__(self, layers: list[nn.Module], shortcut: nn.Module | None = None):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return y if self.shortcut is None else y + self.shortcut(x)


def _layer_factory(name: str, spatial_dims: int, kernel_size: int, norm: LayerSpec, act: LayerSpec,
                   dropout: float, options: dict) -> Callable[[int, int, int], nn.Module]:
    """``make(in_channels, out_channels, stride) -> layer`` for block ``name`` (options already checked)."""
    if name == "conv":
        if options:
            valid = ", ".join(COMMON_OPTIONS)
            raise ModelConfigError(f"unknown option(s) {sorted(options)} for block 'conv'; valid: {valid}")
        return lambda c_in, c_out, stride: ConvNormAct(spatial_dims, c_in, c_out, kernel_size, stride,
                                                       norm or "batch", act or "relu", dropout)
    from kanseg.kan import create_kan_conv

    family = name[len(KAN_PREFIX):]
    return lambda c_in, c_out, stride: create_kan_conv(family, spatial_dims, c_in, c_out, kernel_size,
                                                       stride=stride, padding=kernel_size // 2,
                                                       dropout=dropout, norm=norm, act=act, **options)


def create_block(name: str, spatial_dims: int, in_channels: int, out_channels: int, *, stride: int = 1,
                 kernel_size: int = 3, n_convs: int = 2, residual: bool = False, norm: LayerSpec = None,
                 act: LayerSpec = None, dropout: float = 0.0, **options) -> ConvBlock:
    """Build block ``name`` mapping ``(B, in_channels, *S)`` to ``(B, out_channels, *S / stride)``.

    Args:
        name: ``conv``, ``kan:<family>`` or ``kan:<family>-bottleneck`` (see :func:`list_blocks`).
        spatial_dims: 1, 2 or 3.
        stride: stride of the first layer (2 = downsampling block).
        kernel_size: odd kernel size of every layer ("same" padding).
        n_convs: number of layers (>= 1).
        residual: add a shortcut (identity or strided 1x1 conv) around the layers.
        norm: ``instance``, ``batch``, ``group``, ``none`` or any MONAI ``Norm`` name, or ``(name, options)``;
            ``None`` = the block's default (``batch`` for ``conv``, the family's default for KAN blocks).
        act: activation after the norm, a MONAI ``Act`` name (plus ``silu``, ``identity``) or ``(name, options)``;
            ``None`` = the block's default (``relu`` for ``conv``, the family's post-activation for KAN blocks).
        dropout: dropout probability of every layer.
        options: the family's options for KAN blocks (``degree``, ``grid_size``...).

    Raises:
        ModelConfigError: unknown name or option, or an invalid value (the message names the valid ones).
    """
    if name != "conv" and (not name.startswith(KAN_PREFIX) or name not in list_blocks()):
        raise ModelConfigError(f"unknown block {name!r}; valid: {', '.join(list_blocks())}")
    if n_convs < 1:
        raise ModelConfigError(f"n_convs must be >= 1, got {n_convs!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ModelConfigError(f"kernel_size must be odd and positive, got {kernel_size!r}")
    try:
        make = _layer_factory(name, spatial_dims, kernel_size, norm, act, dropout, options)
        layers = [make(in_channels, out_channels, stride)]
        layers += [make(out_channels, out_channels, 1) for _ in range(n_convs - 1)]
        shortcut = None
        if residual:
            shortcut = nn.Identity()
            if in_channels != out_channels or stride != 1:
                shortcut = conv_class(spatial_dims)(in_channels, out_channels, 1, stride=stride, bias=False)
    except ModelConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ModelConfigError(f"block {name!r}: {err}") from None
    return ConvBlock(layers, shortcut)
