"""U-Net++ (Zhou et al. 2018): nested dense skip pathways, optional deep supervision."""

from __future__ import annotations

import torch
from torch import nn

from kanseg.models.base import BlockFactory, SegmentationModel
from kanseg.models.parts import Upsample


class UNetPlusPlusDecoder(nn.Module):
    """Nested decoder: node ``X[i][j] = block(cat(X[i][0..j-1], up(X[i+1][j-1])))`` of width ``w_i``.

    ``X[i][0]`` are the encoder features ``(B, w_i, *S / 2^i)``. Returns the top row
    ``[X[0][D-1], X[0][D-2], ..., X[0][1]]`` (final first), each ``(B, w_0, *S)``; the block of node
    ``(i, j)`` maps ``j * w_i + w_{i+1} -> w_i``.
    """

    def __init__(self, spatial_dims: int, widths: list[int], make_block: BlockFactory, upsample: str = "linear"):
        super().__init__()
        depth = len(widths)
        self.nodes = [(i, j) for j in range(1, depth) for i in range(depth - j)]  # evaluation order
        self.upsamples = nn.ModuleDict(
            {f"x{i}_{j}": Upsample(spatial_dims, widths[i + 1], upsample) for i, j in self.nodes}
        )
        self.blocks = nn.ModuleDict(
            {f"x{i}_{j}": make_block(j * widths[i] + widths[i + 1], widths[i]) for i, j in self.nodes}
        )
        self.out_channels = [widths[0]] * max(depth - 1, 1)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        depth = len(features)
        if depth == 1:
            return [features[0]]
        grid = [[f] for f in features]  # grid[i][j] = X[i][j]
        for i, j in self.nodes:
            key = f"x{i}_{j}"
            up = self.upsamples[key](grid[i + 1][j - 1], grid[i][0].shape[2:])
            grid[i].append(self.blocks[key](torch.cat(grid[i][:j] + [up], dim=1)))
        return grid[0][:0:-1]


class UNetPlusPlus(SegmentationModel):
    """U-Net++: encoder, nested dense decoder, one head (or one per top-row node with ``deep_supervision``).

    Arguments: :class:`~kanseg.models.base.SegmentationModel`. ``(B, in_channels, *S) -> (B, out_channels, *S)``;
    with ``deep_supervision`` in train mode a list of ``depth - 1`` such logits, the final (deepest) one first.
    """

    supports_deep_supervision = True

    def build_decoder(self, spatial_dims: int, widths: list[int], make_block: BlockFactory,
                      upsample: str) -> nn.Module:
        return UNetPlusPlusDecoder(spatial_dims, widths, make_block, upsample)
