"""Named model presets, timm style: ``create_model(name, **overrides)`` and ``list_models(pattern)``.

A preset is a template plus default arguments. Overrides replace those defaults (``spatial_dims``,
``in_channels``, ``out_channels``, ``widths``...); the ``*block_options`` dicts are merged key by key, so
``create_model("ukagnet", block_options={"dropout": 0.1})`` keeps its BatchNorm.

    >>> model = create_model("unet-gram", spatial_dims=3, in_channels=1, out_channels=2)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from kanseg.kan import list_families
from kanseg.models.attention_unet import AttentionUNet
from kanseg.models.base import template_arguments
from kanseg.models.baselines import BaselineModel, MonaiBasicUNet, MonaiDynUNet, SmpUNet
from kanseg.models.blocks import ModelConfigError
from kanseg.models.dynunet import KANDynUNet
from kanseg.models.unet import UNet
from kanseg.models.unetpp import UNetPlusPlus

TEMPLATES: dict[str, type[nn.Module]] = {
    "UNet": UNet, "UNetPlusPlus": UNetPlusPlus, "AttentionUNet": AttentionUNet, "KANDynUNet": KANDynUNet,
    "MonaiBasicUNet": MonaiBasicUNet, "MonaiDynUNet": MonaiDynUNet, "SmpUNet": SmpUNet,
}
_MERGED_KEYS = ("block_options", "encoder_block_options", "decoder_block_options", "bottleneck_block_options",
               "mixer_options")


@dataclass(frozen=True)
class Preset:
    """A registered model: ``template(**defaults)``, described in one line.

    ``recommended`` marks the presets kanseg's own measurements back (``kanseg models`` lists them first, with
    the evidence in ``benchmarks/README.md``).
    """

    name: str
    template: type[nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    recommended: bool = False

    def build(self, **overrides: Any) -> nn.Module:
        valid = template_arguments(self.template)
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ModelConfigError(f"unknown option(s) {unknown} for model {self.name!r}; valid: {', '.join(valid)}")
        kwargs = {**self.defaults, **overrides}
        for key in _MERGED_KEYS:
            if key in overrides and key in self.defaults and overrides[key] is not None:
                kwargs[key] = {**self.defaults[key], **overrides[key]}
        return self.template(**kwargs)

    @property
    def blocks(self) -> str:
        """``encoder_block``, or ``encoder/decoder`` when they differ; ``(deepest: block)`` when the deepest level's
        block differs, ``+ mixer`` when the preset has one."""
        if issubclass(self.template, BaselineModel):
            return "-"  # a wrapped library network (kanseg.models.baselines)
        enc = self.defaults.get("encoder_block", "conv")
        dec = self.defaults.get("decoder_block") or enc
        deepest = self.defaults.get("bottleneck_block") or enc
        text = enc if dec == enc else f"{enc}/{dec}"
        text += f" (deepest: {deepest})" if deepest != enc else ""
        mixers = [self.defaults.get(key) for key in ("mixer", "decoder_mixer")]
        return text + "".join(f" + {m}" for m in mixers if m)


_PRESETS: dict[str, Preset] = {}


def register_model(name: str, template: type[nn.Module], description: str = "", *, recommended: bool = False,
                   **defaults: Any) -> Preset:
    """Register preset ``name`` = ``template(**defaults)``; names are unique."""
    if name in _PRESETS:
        raise ValueError(f"model {name!r} registered twice")
    unknown = sorted(set(defaults) - set(template_arguments(template)))
    if unknown:
        raise ValueError(f"preset {name!r}: {template.__name__} has no argument(s) {unknown}")
    _PRESETS[name] = Preset(name, template, defaults, description, recommended)
    return _PRESETS[name]


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered presets matching an ``fnmatch`` pattern (``"unet-*"``)."""
    return sorted(n for n in _PRESETS if fnmatch.fnmatchcase(n, pattern))


def get_preset(name: str) -> Preset:
    """The :class:`Preset` registered as ``name``; :class:`ModelConfigError` listing valid names otherwise."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ModelConfigError(f"unknown model {name!r}; valid: {', '.join(list_models())}") from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build preset ``name`` with ``overrides`` (e.g. ``spatial_dims=3, in_channels=1, out_channels=2``).

    The model maps ``(B, in_channels, *S)`` (any ``S``) to logits ``(B, out_channels, *S)``.
    Raises :class:`~kanseg.models.ModelConfigError` (a :class:`~kanseg.errors.KansegError`) for unknown names or
    options and invalid values.
    """
    return get_preset(name).build(**overrides)


# --- presets ---------------------------------------------------------------------------------------------------
# Presets set only what differs from the block defaults (gram degree 3 is the family default), so overriding
# encoder_block="conv" never inherits KAN-only options. KAN presets follow the paper (Drokin 2024): widths
# 16 * 2^d, depth 5, two KAN convs per level, stride-2 first conv of each level, (bi/tri)linear upsampling,
# concatenated skips. The conv baseline doubles the widths
# (32 * 2^d), which puts it at a similar parameter budget (~7.8 M vs ~9.8 M) with the classic max-pooling.
_KAN = dict(depth=5, base_width=16, downsample="stride", upsample="linear")

register_model("unet-conv", UNet, "U-Net baseline, Conv-BN-ReLU x2, widths 32*2^d, max-pool",
               encoder_block="conv", depth=5, base_width=32, downsample="maxpool", upsample="linear",
               recommended=True)
for _family in list_families():
    register_model(f"unet-{_family}", UNet, f"U-Net of {_family} KAN convs (family defaults)",
                   encoder_block=f"kan:{_family}", **_KAN)
register_model("unet-gram-bottleneck", UNet, "U-Net of bottleneck Gram KAN convs, degree 3",
               encoder_block="kan:gram-bottleneck", **_KAN)
register_model("unet-gram-conv", UNet, "Gram KAN encoder (degree 3), conv decoder", encoder_block="kan:gram",
               decoder_block="conv", **_KAN)
register_model("unetpp-gram", UNetPlusPlus, "U-Net++ of Gram KAN convs, degree 3", encoder_block="kan:gram",
               **_KAN)
register_model("unetpp-gram-ds", UNetPlusPlus, "U-Net++ of Gram KAN convs with deep supervision",
               encoder_block="kan:gram", deep_supervision=True, **_KAN)
register_model("attunet-gram", AttentionUNet, "Attention U-Net of Gram KAN convs, degree 3",
               encoder_block="kan:gram", **_KAN)
# UKAGNet as published (torch-conv-kan models/ukanet.py `UKAGNet`, plain KAGN layers, degree 3 = the gram
# default): BatchNorm (affine) after each KAGN conv, the reference default. 9.81 M parameters for 3 -> 1 channels.
register_model("ukagnet", UNet, "UKAGNet of the paper: plain KAGN U-Net, BatchNorm, 9.81 M params (3->1)",
               encoder_block="kan:gram", block_options={"norm": "batch"}, **_KAN)
register_model("ukagnet-bottleneck", UNet, "UKAGNet with bottleneck KAGN convs (the reference's default)",
               encoder_block="kan:gram-bottleneck", block_options={"norm": "batch"}, **_KAN)
# MONAI's DynUNet (nnU-Net) with its convs swapped for KAN convs (kanseg.kan.monai_interop): MONAI's InstanceNorm +
# LeakyReLU after each conv, transposed-conv upsampling; and the plain DynUNet as its baseline.
register_model("dynunet-gram", KANDynUNet, "MONAI DynUNet of Gram KAN convs, degree 3, widths 16*2^d",
               encoder_block="kan:gram", depth=5, base_width=16)
register_model("dynunet-conv", KANDynUNet, "MONAI DynUNet baseline (plain convs), widths 32*2^d",
               encoder_block="conv", depth=5, base_width=32)
# KAN mixers of the paper (kanseg.kan.mixers): Gram self-attention / focal modulation after the bottleneck stage
# (a kanseg extension), and focal modulation in every decoder stage as in the reference UKAGNet (mixer_type=focal).
register_model("unet-gram-attention", UNet, "U-Net of Gram KAN convs + KAN self-attention (width 64) after the "
               "bottleneck", encoder_block="kan:gram", mixer="kan-attention", mixer_options={"inner_channels": 64},
               **_KAN)
register_model("unet-gram-focal", UNet, "U-Net of Gram KAN convs + KAN focal modulation after the bottleneck",
               encoder_block="kan:gram", mixer="kan-focal", **_KAN)
register_model("unet-gram-decoder-focal", UNet, "UKAGNet + KAN focal modulation in every decoder stage (reference)",
               encoder_block="kan:gram", block_options={"norm": "batch"}, decoder_mixer="kan-focal", **_KAN)
# Established baselines trained by kanseg's own trainer (kanseg.models.baselines): library defaults, random init.
register_model("monai-basicunet", MonaiBasicUNet, "MONAI BasicUNet, library defaults (2D: 1.98 M params, 3->1)",
               recommended=True)
register_model("monai-dynunet", MonaiDynUNet, "MONAI DynUNet (nnU-Net style), 5 levels, instance norm")
register_model("smp-unet-resnet18", SmpUNet, "smp Unet, ResNet-18 encoder, random init, 2D only",
               encoder_name="resnet18")
register_model("smp-unet-resnet34", SmpUNet, "smp Unet, ResNet-34 encoder, random init, 2D only",
               encoder_name="resnet34")
