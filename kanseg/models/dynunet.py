"""MONAI's DynUNet (the nnU-Net U-Net) with KAN convolutions, as a kanseg template.

    >>> model = create_model("dynunet-gram", spatial_dims=3, in_channels=1, out_channels=3)

The network is MONAI's own :class:`monai.networks.nets.DynUNet`; its convolutions are then swapped for KAN
convolutions of the same geometry (:func:`kanseg.kan.monai_interop.swap_convs_for_kan`), so MONAI's blocks keep
their norm and activation after each KAN conv, the transposed-conv upsampling and the 1x1 head stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kanseg.kan.factories import LayerSpec
from kanseg.models.base import _check, _resolve_widths
from kanseg.models.blocks import ModelConfigError, list_blocks
from kanseg.models.parts import crop_to, pad_to_multiple


class KANDynUNet(nn.Module):
    """DynUNet: level 0 at full resolution, each further level halves it (stride-2 first conv), kernel 3 everywhere.

    ``forward(x)``: ``(B, in_channels, *S)``, any ``S`` (padded to a multiple of ``2^(depth-1)``, cropped back) ->
    logits ``(B, out_channels, *S)``.

    Args:
        spatial_dims, in_channels, out_channels, widths, depth, base_width: as for
            :class:`~kanseg.models.SegmentationModel`.
        encoder_block: ``conv`` (MONAI's DynUNet as is) or ``kan:<family>[-bottleneck]`` for every conv with a 3-wide
            kernel (encoder and decoder).
        block_options: the KAN family's options (``degree``, ``grid_size``, ``dim_reduction``...).
        norm, act: MONAI's norm and activation after each conv (DynUNet's ``norm_name``/``act_name``): a name or
            ``(name, options)``.
        res_block: residual blocks (``UnetResBlock``) instead of plain ones.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 1, *,
                 widths: Sequence[int] | None = None, depth: int | None = None, base_width: int = 16,
                 encoder_block: str = "kan:gram", block_options: dict[str, Any] | None = None,
                 norm: LayerSpec = "instance", act: LayerSpec = ("leakyrelu", {"negative_slope": 0.01}),
                 res_block: bool = False):
        super().__init__()
        from monai.networks.nets import DynUNet

        from kanseg.kan.monai_interop import swap_convs_for_kan

        widths = _resolve_widths(widths, depth, base_width)
        _check(spatial_dims in (1, 2, 3), f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        _check(len(widths) >= 3, f"{type(self).__name__} needs depth >= 3 (MONAI's DynUNet), got {len(widths)}")
        _check(encoder_block in list_blocks(), f"unknown block {encoder_block!r}; valid: {', '.join(list_blocks())}")
        _check(encoder_block != "conv" or not block_options,
               f"block_options {sorted(block_options or {})} need a KAN block, not 'conv'")
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.widths = widths
        self.size_divisor = 2 ** (len(widths) - 1)
        n = len(widths)
        try:
            self.net = DynUNet(spatial_dims, in_channels, out_channels, kernel_size=[3] * n,
                               strides=[1] + [2] * (n - 1), upsample_kernel_size=[2] * (n - 1), filters=widths,
                               norm_name=_monai_spec(norm), act_name=_monai_spec(act), res_block=res_block)
            if encoder_block != "conv":
                swap_convs_for_kan(self.net, encoder_block.removeprefix("kan:"), **(block_options or {}))
        except (ValueError, TypeError, KeyError) as err:
            raise ModelConfigError(f"{type(self).__name__}: {str(err).strip().splitlines()[0]}") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ModelConfigError(f"{type(self).__name__} expects input (B, {self.in_channels}, "
                                   f"{self.spatial_dims} spatial dims), got shape {tuple(x.shape)}")
        x, size = pad_to_multiple(x, self.size_divisor)
        return crop_to(self.net(x), size)


def _monai_spec(spec: LayerSpec) -> str | tuple[str, dict]:
    """kanseg's layer spec (a name or a ``(name, options)`` pair, also a 2-list from YAML/JSON) as MONAI takes it."""
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        return spec[0], dict(spec[1])
    return spec
