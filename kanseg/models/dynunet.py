"""MONAI's DynUNet (the nnU-Net U-Net) with KAN convolutions, as a kanseg template.

    >>> model = create_model("dynunet-gram", spatial_dims=3, in_channels=1, out_channels=3)

The network is MONAI's own :class:`monai.networks.nets.DynUNet`; its convolutions are then swapped for KAN
convolutions of the same geometry (:func:`kanseg.kan.monai_interop.swap_convs_for_kan`), so MONAI's blocks keep
their norm and activation after each KAN conv, the transposed-conv upsampling and the 1x1 head stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kanseg.kan.factories import LayerSpec
from kanseg.models.base import _check, _resolve_widths
from kanseg.models.baselines import MonaiDynUNet
from kanseg.models.blocks import ModelConfigError, list_blocks


class KANDynUNet(MonaiDynUNet):
    """DynUNet: level 0 at full resolution, each further level halves it (stride-2 first conv), kernel 3 everywhere.

    The network is built by :class:`~kanseg.models.baselines.MonaiDynUNet` (one definition of the DynUNet wrapper:
    padding, cropping, input checks); this class only names its widths like the kanseg templates and swaps the convs.

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
        widths = _resolve_widths(widths, depth, base_width)
        _check(spatial_dims in (1, 2, 3), f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        _check(len(widths) >= 3, f"{type(self).__name__} needs depth >= 3 (MONAI's DynUNet), got {len(widths)}")
        _check(encoder_block in list_blocks(), f"unknown block {encoder_block!r}; valid: {', '.join(list_blocks())}")
        _check(encoder_block != "conv" or not block_options,
               f"block_options {sorted(block_options or {})} need a KAN block, not 'conv'")
        super().__init__(spatial_dims, in_channels, out_channels, depth=len(widths), filters=widths, kernel_size=3,
                         norm_name=norm, act_name=act, res_block=res_block)
        self.widths = widths
        if encoder_block != "conv":
            from kanseg.kan.monai_interop import swap_convs_for_kan

            try:
                swap_convs_for_kan(self.net, encoder_block.removeprefix("kan:"), **(block_options or {}))
            except (ValueError, TypeError, KeyError) as err:
                raise ModelConfigError(f"{type(self).__name__}: {str(err).strip().splitlines()[0]}") from None
