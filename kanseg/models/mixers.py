"""KAN mixers in the templates: after the bottleneck stage (``mixer``) or at the start of every decoder block
(``decoder_mixer``, the reference UKAGNet's ``mixer_type``), chosen by name from :func:`kanseg.kan.mixers.list_mixers`.

    >>> model = create_model("unet-gram", mixer="kan-attention", mixer_options={"degree": 2})

``mixer_options`` go to every mixer of the model (``family``, ``degree``, ``inner_channels``, ``focal_level``...).
A decoder mixer runs on the concatenated channels (upsampled + skip) before the block, as in the reference.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from kanseg.kan.mixers import create_mixer, list_mixers
from kanseg.models.blocks import ModelConfigError


def build_mixer(name: str | None, spatial_dims: int, channels: int, options: dict[str, Any] | None) -> nn.Module | None:
    """Mixer ``name`` on ``channels`` or ``None`` (``name`` None/``"none"``); one-line :class:`ModelConfigError`s."""
    if name in (None, "none"):
        return None
    if name not in list_mixers():
        raise ModelConfigError(f"unknown mixer {name!r}; valid: none, {', '.join(list_mixers())}")
    try:
        return create_mixer(name, spatial_dims, channels, **(options or {}))
    except (ValueError, TypeError) as err:
        raise ModelConfigError(f"mixer {name!r}: {err}") from None


class MixedBlock(nn.Module):
    """``block(mixer(x))``: ``(B, C_in, *S) -> (B, C_out, *S / stride)``; the mixer keeps ``C_in``."""

    def __init__(self, mixer: nn.Module, block: nn.Module):
        super().__init__()
        self.mixer = mixer
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.mixer(x))


def with_mixer(make_block: Callable[..., nn.Module], name: str | None, spatial_dims: int,
               options: dict[str, Any] | None) -> Callable[..., nn.Module]:
    """Wrap a block factory so each block starts with mixer ``name`` on its input channels (no-op for ``None``)."""
    if name in (None, "none"):
        return make_block

    def make(in_channels: int, out_channels: int, **kwargs: Any) -> nn.Module:
        return MixedBlock(build_mixer(name, spatial_dims, in_channels, options), make_block(in_channels, out_channels,
                                                                                            **kwargs))

    return make
