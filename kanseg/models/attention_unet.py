"""Attention U-Net (Oktay et al. 2018): U-Net whose skips pass through additive attention gates."""

from __future__ import annotations

from kanseg.models.unet import UNet


class AttentionUNet(UNet):
    """U-Net with an :class:`~kanseg.models.parts.AttentionGate` on every skip connection.

    Each gate is driven by the upsampled decoder features of the level below. Arguments:
    :class:`~kanseg.models.base.SegmentationModel`. ``(B, in_channels, *S) -> (B, out_channels, *S)``.
    """

    attention = True
