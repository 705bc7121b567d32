"""U-Net (Ronneberger et al. 2015) with pluggable blocks; also the base of Attention U-Net."""

from __future__ import annotations

import torch
from torch import nn

from kanseg.models.base import BlockFactory, SegmentationModel
from kanseg.models.parts import AttentionGate, Upsample


class UNetDecoder(nn.Module):
    """Expanding path: at level d, upsample to the skip's size, [gate the skip], concatenate, block.

    ``features [(B, w_d, *S / 2^d)] -> [(B, w_0, *S)]``. The block of level d maps ``w_{d+1} + w_d -> w_d``.

    Args:
        attention: gate each skip with an :class:`~kanseg.models.parts.AttentionGate` driven by the upsampled
            decoder features (Attention U-Net).
    """

    def __init__(self, spatial_dims: int, widths: list[int], make_block: BlockFactory, upsample: str = "linear",
                 attention: bool = False):
        super().__init__()
        levels = range(len(widths) - 2, -1, -1)
        self.upsamples = nn.ModuleList(Upsample(spatial_dims, widths[d + 1], upsample) for d in levels)
        self.gates = nn.ModuleList(AttentionGate(spatial_dims, widths[d], widths[d + 1]) for d in levels) \
            if attention else None
        self.blocks = nn.ModuleList(make_block(widths[d + 1] + widths[d], widths[d]) for d in levels)
        self.out_channels = [widths[0]]

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        x = features[-1]
        for i, skip in enumerate(reversed(features[:-1])):
            x = self.upsamples[i](x, skip.shape[2:])
            if self.gates is not None:
                skip = self.gates[i](skip, x)
            x = self.blocks[i](torch.cat([x, skip], dim=1))
        return [x]


class UNet(SegmentationModel):
    """U-Net: encoder, decoder with concatenated skips, 1x1 head. Arguments: :class:`SegmentationModel`.

    ``(B, in_channels, *S) -> (B, out_channels, *S)`` for any ``S`` (2D or 3D).
    """

    attention = False

    def build_decoder(self, spatial_dims: int, widths: list[int], make_block: BlockFactory,
                      upsample: str) -> nn.Module:
        return UNetDecoder(spatial_dims, widths, make_block, upsample, attention=self.attention)
