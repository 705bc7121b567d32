"""The shared base of the templates: encoder + decoder + segmentation head(s), wired once.

A template (:class:`~kanseg.models.UNet`, :class:`~kanseg.models.UNetPlusPlus`,
:class:`~kanseg.models.AttentionUNet`) only says how its decoder is built (:meth:`SegmentationModel.build_decoder`).
Everything else lives here: argument checks, the encoder, the 1x1 heads, deep supervision and the
pad-to-a-multiple / crop-back that lets any input size through.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any, Callable, Sequence

import torch
from torch import nn

from kanseg.kan.factories import conv_class
from kanseg.models.blocks import ModelConfigError, create_block
from kanseg.models.mixers import build_mixer, with_mixer
from kanseg.models.parts import check_upsample_mode, crop_to, pad_to_multiple

BlockFactory = Callable[..., nn.Module]  # make(in_channels, out_channels, stride=1) -> block
DOWNSAMPLE_MODES = ("maxpool", "avgpool", "stride")


class UNetEncoder(nn.Module):
    """Contracting path: level 0 = block(in -> w_0); level d = downsample + block(w_{d-1} -> w_d).

    ``(B, C_in, *S) -> [(B, w_d, *S / 2^d) for d in range(depth)]`` (finest first). ``S`` must be divisible
    by ``2^(depth-1)``; :class:`SegmentationModel` pads to guarantee it.

    Args:
        downsample: ``maxpool``/``avgpool`` (pool by 2, then a stride-1 block) or ``stride`` (the block's first
            layer has stride 2, as in UKAGNet).
    """

    def __init__(self, spatial_dims: int, in_channels: int, widths: Sequence[int], make_block: BlockFactory,
                 downsample: str = "maxpool", make_bottleneck_block: BlockFactory | None = None):
        super().__init__()
        pool = {"maxpool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
                "avgpool": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)}.get(downsample)
        self.levels = nn.ModuleList()
        for d, width in enumerate(widths):
            c_in = in_channels if d == 0 else widths[d - 1]
            if d == len(widths) - 1 and make_bottleneck_block is not None:
                make_block = make_bottleneck_block
            if d == 0:
                level = make_block(c_in, width)
            elif pool is None:
                level = make_block(c_in, width, stride=2)
            else:
                level = nn.Sequential(pool[spatial_dims - 1](2), make_block(c_in, width))
            self.levels.append(level)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


class SegmentationModel(nn.Module):
    """Encoder -> decoder -> 1x1 head(s), for any input size.

    ``forward(x)``: ``x (B, in_channels, *S)``, any ``S`` -> logits ``(B, out_channels, *S)``. With
    ``deep_supervision`` (templates that support it) a model in train mode returns a list of logits, the final
    one first; in eval mode it always returns the final logits.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels, out_channels: image channels and number of output logit channels.
        widths: channels per level (``depth = len(widths)``); default ``base_width * 2^d``.
        depth: number of levels (with ``base_width``) when ``widths`` is not given; default 5.
        base_width: width of level 0 when ``widths`` is not given.
        encoder_block, decoder_block: block names (:func:`~kanseg.models.list_blocks`); the decoder defaults to the
            encoder's block.
        bottleneck_block: the block of the deepest encoder level (the bottleneck stage); defaults to the encoder's
            block. ``encoder_block="conv", bottleneck_block="kan:gram"`` puts KAN convs in the bottleneck only.
        block_options: options for every block (``degree``, ``norm``, ``dropout``, ``residual``, ``n_convs``...).
        encoder_block_options, decoder_block_options, bottleneck_block_options: options for one part only, merged
            over ``block_options`` (the bottleneck's over the encoder's).
        downsample: ``maxpool``, ``avgpool`` or ``stride`` (strided first conv of each level).
        upsample: ``linear`` (bi/trilinear, ``align_corners=True``), ``nearest`` or ``transpose``.
        deep_supervision: one head per decoder output of the top row (U-Net++ only).
        mixer: a KAN mixer (``kan-attention``, ``kan-focal``) on the deepest features, after the bottleneck stage.
        decoder_mixer: a KAN mixer at the start of every decoder block, on the concatenated channels.
        mixer_options: options of every mixer (``family``, ``degree``...; :mod:`kanseg.models.mixers`).
    """

    supports_deep_supervision = False

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 1, *,
                 widths: Sequence[int] | None = None, depth: int | None = None, base_width: int = 16,
                 encoder_block: str = "conv", decoder_block: str | None = None,
                 block_options: dict[str, Any] | None = None, encoder_block_options: dict[str, Any] | None = None,
                 decoder_block_options: dict[str, Any] | None = None, bottleneck_block: str | None = None,
                 bottleneck_block_options: dict[str, Any] | None = None, downsample: str = "maxpool",
                 upsample: str = "linear", deep_supervision: bool = False, mixer: str | None = None,
                 decoder_mixer: str | None = None, mixer_options: dict[str, Any] | None = None):
        super().__init__()
        widths = _resolve_widths(widths, depth, base_width)
        _check(spatial_dims in (1, 2, 3), f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        _check(in_channels >= 1 and out_channels >= 1,
               f"in_channels and out_channels must be >= 1, got {in_channels!r} and {out_channels!r}")
        _check(downsample in DOWNSAMPLE_MODES,
               f"unknown downsample {downsample!r}; valid: {', '.join(DOWNSAMPLE_MODES)}")
        _check(not deep_supervision or self.supports_deep_supervision,
               f"deep_supervision is not available for {type(self).__name__} (use UNetPlusPlus)")
        try:
            upsample = check_upsample_mode(upsample)
        except ValueError as err:
            raise ModelConfigError(str(err)) from None
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.widths = widths
        self.deep_supervision = deep_supervision
        self.size_divisor = 2 ** (len(widths) - 1)

        shared = dict(block_options or {})
        make_encoder_block = partial(create_block, encoder_block, spatial_dims,
                                     **{**shared, **(encoder_block_options or {})})
        make_decoder_block = partial(create_block, decoder_block or encoder_block, spatial_dims,
                                     **{**shared, **(decoder_block_options or {})})
        make_decoder_block = with_mixer(make_decoder_block, decoder_mixer, spatial_dims, mixer_options)
        make_bottleneck_block = None
        if bottleneck_block is not None or bottleneck_block_options:
            bottleneck_options = {**shared, **(encoder_block_options or {}), **(bottleneck_block_options or {})}
            make_bottleneck_block = partial(create_block, bottleneck_block or encoder_block, spatial_dims,
                                            **bottleneck_options)
        self.encoder = UNetEncoder(spatial_dims, in_channels, widths, make_encoder_block, downsample,
                                   make_bottleneck_block)
        self.mixer = build_mixer(mixer, spatial_dims, widths[-1], mixer_options)
        self.decoder = self.build_decoder(spatial_dims, widths, make_decoder_block, upsample)
        head_channels = self.decoder.out_channels if deep_supervision else self.decoder.out_channels[:1]
        conv = conv_class(spatial_dims)
        self.heads = nn.ModuleList(conv(c, out_channels, kernel_size=1) for c in head_channels)

    def build_decoder(self, spatial_dims: int, widths: list[int], make_block: BlockFactory,
                      upsample: str) -> nn.Module:
        """The template's decoder: ``features -> [maps]`` (final first) with an ``out_channels`` list."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ModelConfigError(
                f"{type(self).__name__} expects input (B, {self.in_channels}, {self.spatial_dims} spatial dims), "
                f"got shape {tuple(x.shape)}"
            )
        x, size = pad_to_multiple(x, self.size_divisor)
        features = self.encoder(x)
        if self.mixer is not None:
            features[-1] = self.mixer(features[-1])
        maps = self.decoder(features)
        if self.deep_supervision and self.training:
            return [crop_to(head(m), size) for head, m in zip(self.heads, maps)]
        return crop_to(self.heads[0](maps[0]), size)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ModelConfigError(message)


def _resolve_widths(widths: Sequence[int] | None, depth: int | None, base_width: int) -> list[int]:
    if widths is None:
        depth = 5 if depth is None else depth
        _check(isinstance(depth, int) and depth >= 1, f"depth must be an integer >= 1, got {depth!r}")
        _check(isinstance(base_width, int) and base_width >= 1, f"base_width must be >= 1, got {base_width!r}")
        return [base_width * 2**d for d in range(depth)]
    widths = list(widths)
    _check(len(widths) >= 1 and all(isinstance(w, int) and w >= 1 for w in widths),
           f"widths must be a non-empty list of positive integers, got {widths!r}")
    _check(depth is None or depth == len(widths), f"depth {depth!r} does not match widths {widths!r}")
    return widths


def template_arguments(template: type[SegmentationModel]) -> list[str]:
    """Names of the constructor arguments of a template (the valid keys of a model config)."""
    names = []
    for cls in template.__mro__:
        if cls is nn.Module:
            break
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and name not in names:
                names.append(name)
    return names
