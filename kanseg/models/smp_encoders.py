"""KAN encoders for segmentation-models-pytorch (smp), so smp's decoders can be built on KAN blocks.

Importing this module registers, in smp's encoder table, one 2D encoder per block of
:func:`~kanseg.models.list_blocks`: ``kanseg-conv``, ``kanseg-<family>`` and ``kanseg-<family>-bottleneck``.

    >>> import segmentation_models_pytorch as smp
    >>> import kanseg.models.smp_encoders  # registers the encoders
    >>> model = smp.Unet("kanseg-gram", encoder_weights=None, in_channels=1, classes=2)
    >>> model(torch.randn(1, 1, 64, 64)).shape
    torch.Size([1, 2, 64, 64])

There are no pretrained weights: always pass ``encoder_weights=None`` (anything else raises smp's KeyError
listing the available weights, i.e. none; nothing is downloaded). Inputs must be divisible by ``2^depth``
(smp checks it); the kanseg templates have no such restriction.
"""

from __future__ import annotations

from typing import Any

import torch
from segmentation_models_pytorch import encoders as smp_encoders
from segmentation_models_pytorch.encoders._base import EncoderMixin
from torch import nn

from kanseg.models.blocks import create_block, list_blocks

PREFIX = "kanseg-"
DEFAULT_WIDTHS = (16, 32, 64, 128, 256)


class KANEncoder(nn.Module, EncoderMixin):
    """smp encoder made of kanseg blocks, 2D: ``(B, C_in, H, W) -> [x, f_1, ..., f_depth]``.

    Stage ``d`` (1-based) is one block with a stride-2 first layer: ``f_d`` has shape
    ``(B, out_channels[d], H / 2^d, W / 2^d)``; ``f_0 = x`` as in smp's own encoders.

    Args:
        block: block name (``conv``, ``kan:gram``, ``kan:gram-bottleneck``...).
        out_channels: ``[3, w_1, ..., w_5]``; smp passes the real input channels later via :meth:`set_in_channels`.
        block_options: passed to :func:`~kanseg.models.create_block` (``degree``, ``norm``, ``n_convs``...).
        depth: number of stages used (1..len(out_channels) - 1).
        output_stride: only 32 (dilated mode is not supported).
    """

    def __init__(self, block: str, out_channels: list[int], block_options: dict[str, Any] | None = None,
                 depth: int = 5, output_stride: int = 32):
        nn.Module.__init__(self)
        if not 1 <= depth <= len(out_channels) - 1:
            raise ValueError(f"{type(self).__name__} depth must be in [1, {len(out_channels) - 1}], got {depth}")
        self._depth = depth
        self._in_channels = out_channels[0]
        self._out_channels = list(out_channels)
        self._output_stride = output_stride
        self.block = block
        self.block_options = dict(block_options or {})
        self.stages = nn.ModuleList(
            self._make_stage(out_channels[d], out_channels[d + 1]) for d in range(depth)
        )

    def _make_stage(self, in_channels: int, out_channels: int) -> nn.Module:
        return create_block(self.block, 2, in_channels, out_channels, stride=2, **self.block_options)

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        """Rebuild the first stage for ``in_channels`` (replaces smp's first-``Conv2d`` patching, which cannot
        see the basis weights of a KAN layer). Without pretrained weights nothing is lost."""
        if in_channels == self._in_channels:
            return
        self._in_channels = in_channels
        self._out_channels[0] = in_channels
        self.stages[0] = self._make_stage(in_channels, self._out_channels[1])

    def make_dilated(self, *args, **kwargs):
        raise ValueError(f"{type(self).__name__} does not support dilated mode (output_stride must be 32)")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def smp_encoder_name(block: str) -> str:
    """smp encoder name of a kanseg block: ``kan:gram`` -> ``kanseg-gram``, ``conv`` -> ``kanseg-conv``."""
    return PREFIX + block.removeprefix("kan:")


def register_smp_encoders(widths: tuple[int, ...] = DEFAULT_WIDTHS) -> list[str]:
    """Add (or refresh) one smp encoder per kanseg block; returns the registered names."""
    names = []
    for block in list_blocks():
        name = smp_encoder_name(block)
        smp_encoders.encoders[name] = {
            "encoder": KANEncoder,
            "pretrained_settings": {},
            "params": {"block": block, "out_channels": [3, *widths]},
        }
        names.append(name)
    return names


SMP_ENCODERS = register_smp_encoders()
