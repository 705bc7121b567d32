"""``create_kan_conv``: build a KAN conv layer by family name; ``is_kan_layer``: tell KAN layers apart by type."""

from __future__ import annotations

from torch import nn

from kanseg.kan.factories import LayerSpec
from kanseg.kan.layers import KANConv
from kanseg.kan.peft_layer import PEFTKANConv

# The KAN layer types: what ``optim.kan_lr`` trains and what the FLOP counter books as KAN work (a PEFT layer's new
# degrees and deltas are KAN parameters too).
KAN_LAYERS: tuple[type[nn.Module], ...] = (KANConv, PEFTKANConv)

BOTTLENECK_SUFFIX = "-bottleneck"


def parse_family(name: str) -> tuple[str, bool]:
    """``"gram-bottleneck"`` -> ``("gram", True)``; ``"gram"`` -> ``("gram", False)``."""
    if name.endswith(BOTTLENECK_SUFFIX):
        return name[: -len(BOTTLENECK_SUFFIX)], True
    return name, False


def create_kan_conv(family: str, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int,
                    stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1, dropout: float = 0.0,
                    norm: LayerSpec = None, bottleneck: bool = False, act: LayerSpec = None,
                    **options) -> KANConv:
    """A :class:`~kanseg.kan.KANConv` of ``family`` (``"<family>-bottleneck"`` selects the bottleneck variant).

    ``options`` are the family's hyperparameters (``degree``, ``grid_size``, ``grid_range``, ``spline_order``,
    ``g``, ``k``, ``a``, ``b``, ``wavelet_type``, ``input_norm``) and ``dim_reduction`` for the bottleneck.
    ``norm`` and ``act``: names or ``(name, options)`` of MONAI's factories (see :class:`~kanseg.kan.KANConv`).
    Unknown families or options raise ``ValueError`` listing the valid ones.
    """
    base, is_bottleneck = parse_family(family)
    return KANConv(base, spatial_dims, in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                   dilation=dilation, groups=groups, dropout=dropout, norm=norm,
                   bottleneck=bottleneck or is_bottleneck, act=act, **options)


def is_kan_layer(module: nn.Module) -> bool:
    """True for a KAN layer (an instance of a :data:`KAN_LAYERS` type): its basis, convs, norm and activation
    are KAN parameters and KAN work. Decided by type, never by class or module name."""
    return isinstance(module, KAN_LAYERS)
