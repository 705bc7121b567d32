"""Established baselines as kanseg models: MONAI ``BasicUNet`` and ``DynUNet``, smp ``Unet`` with ResNet encoders.

Each wrapper takes the same ``spatial_dims, in_channels, out_channels`` the trainer passes, maps
``(B, in_channels, *S) -> (B, out_channels, *S)`` for any ``S`` (zero-pads up to the net's size divisor at the
end of each spatial axis and crops back, like the kanseg templates), and checks its input shape. smp encoders
never load pretrained weights (``encoder_weights=None``): nothing is downloaded.

    >>> model = create_model("monai-basicunet", spatial_dims=3, in_channels=1, out_channels=2)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from kanseg.models.blocks import ModelConfigError
from kanseg.models.parts import crop_to, pad_to_multiple


def _spec(value: Any) -> Any:
    """A norm/act spec as MONAI wants it: YAML lists ``[name, {options}]`` become tuples."""
    return tuple(value) if isinstance(value, list) else value


class BaselineModel(nn.Module):
    """Shared part of the wrappers: argument checks, input check, pad to ``size_divisor`` and crop back.

    Subclasses set ``self.net`` (the wrapped network) and ``self.size_divisor``.
    """

    supported_dims: tuple[int, ...] = (1, 2, 3)

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 1):
        super().__init__()
        name = type(self).__name__
        if spatial_dims not in self.supported_dims:
            dims = ", ".join(map(str, self.supported_dims))
            raise ModelConfigError(f"{name} supports spatial_dims {dims} only, got {spatial_dims!r}")
        channels = (in_channels, out_channels)
        if not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ModelConfigError(f"in_channels and out_channels must be >= 1, got {in_channels!r} and {out_channels!r}")
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.size_divisor = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ModelConfigError(
                f"{type(self).__name__} expects input (B, {self.in_channels}, {self.spatial_dims} spatial dims), "
                f"got shape {tuple(x.shape)}"
            )
        x, size = pad_to_multiple(x, self.size_divisor)
        return crop_to(self.net(x), size)


def _build(what: str, make):
    try:
        return make()
    except (ValueError, TypeError, AssertionError, KeyError) as err:
        raise ModelConfigError(f"{what}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


class MonaiBasicUNet(BaselineModel):
    """MONAI ``BasicUNet`` (4 poolings, inputs padded to multiples of 16); arguments as in MONAI, same defaults:
    ``features`` (6 widths), ``act``, ``norm``, ``bias``, ``dropout``, ``upsample`` (``deconv``, ``pixelshuffle``,
    ``nontrainable``)."""

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 1,
                 features: Sequence[int] = (32, 32, 64, 128, 256, 32),
                 act: Any = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
                 norm: Any = ("instance", {"affine": True}), bias: bool = True, dropout: float = 0.0,
                 upsample: str = "deconv"):
        super().__init__(spatial_dims, in_channels, out_channels)
        from monai.networks.nets import BasicUNet

        self.size_divisor = 16
        self.net = _build("MonaiBasicUNet", lambda: BasicUNet(
            spatial_dims, in_channels, out_channels, features=tuple(features), act=_spec(act), norm=_spec(norm),
            bias=bias, dropout=dropout, upsample=upsample))


class MonaiDynUNet(BaselineModel):
    """MONAI ``DynUNet`` (nnU-Net style): ``depth`` levels, stride 1 then 2 at each level, ``kernel_size`` everywhere.

    Args:
        depth: number of levels; inputs are padded to multiples of ``2^(depth-1)``.
        filters: widths per level; default MONAI's (32·2^d, capped at 320 in 3D and 512 in 2D).
        kernel_size: odd kernel size of every conv.
        norm_name, act_name, dropout, res_block: as in MONAI (instance norm, leaky ReLU by default).
        deep_supervision is not exposed: the wrapper always returns the final logits.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 1, depth: int = 5,
                 filters: Sequence[int] | None = None, kernel_size: int = 3,
                 norm_name: Any = ("instance", {"affine": True}),
                 act_name: Any = ("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
                 dropout: float | None = None, res_block: bool = False):
        super().__init__(spatial_dims, in_channels, out_channels)
        from monai.networks.nets import DynUNet

        if not isinstance(depth, int) or depth < 2:
            raise ModelConfigError(f"{type(self).__name__}: depth must be an integer >= 2, got {depth!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ModelConfigError(f"{type(self).__name__}: kernel_size must be odd and positive, got {kernel_size!r}")
        if filters is not None and len(filters) != depth:
            raise ModelConfigError(f"{type(self).__name__}: filters {list(filters)} must have depth={depth} entries")
        strides = [1] + [2] * (depth - 1)
        self.size_divisor = 2 ** (depth - 1)
        self.net = _build(type(self).__name__, lambda: DynUNet(
            spatial_dims, in_channels, out_channels, kernel_size=[kernel_size] * depth, strides=strides,
            upsample_kernel_size=strides[1:], filters=None if filters is None else list(filters), dropout=dropout,
            norm_name=_spec(norm_name), act_name=_spec(act_name), res_block=res_block))


class SmpUNet(BaselineModel):
    """segmentation-models-pytorch ``Unet``, 2D only, encoder ``encoder_name`` with random init (no download).

    Five encoder stages (smp's default; with fewer, smp keeps the deeper stages as unused parameters), so inputs are
    padded to multiples of 32.

    Args:
        encoder_name: any smp encoder (``resnet18``, ``resnet34``...); ``encoder_weights`` is always None.
        decoder_channels: five decoder widths (default smp's ``(256, 128, 64, 32, 16)``).
    """

    supported_dims = (2,)

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 1,
                 encoder_name: str = "resnet34", decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)):
        super().__init__(spatial_dims, in_channels, out_channels)
        import segmentation_models_pytorch as smp

        if len(decoder_channels) != 5:
            raise ModelConfigError(f"SmpUNet: decoder_channels must have 5 entries, got {list(decoder_channels)}")
        self.size_divisor = 32
        self.net = _build(f"SmpUNet({encoder_name})", lambda: smp.Unet(
            encoder_name, encoder_weights=None, decoder_channels=list(decoder_channels), in_channels=in_channels,
            classes=out_channels))
