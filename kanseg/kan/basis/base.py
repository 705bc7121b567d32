"""The contract of a KAN basis family, and the family registry.

A family is one small class: its input map ν, its basis B (P functions per channel) and a few flags that tell
the generic :class:`kanseg.kan.KANConv` how to wire the base branch and the post-processing. Register with
``@register_family``; everything else (conv layer, bottleneck, importer, kernels) is generic over families.

kanseg's basis layout is *channel-major*: channel ``c`` of the input becomes channels ``c*P .. c*P+P-1`` of the
expanded tensor, so each group's channels stay contiguous and a grouped convolution keeps groups apart.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

_FAMILIES: dict[str, type["BasisFamily"]] = {}


def register_family(cls: type["BasisFamily"]) -> type["BasisFamily"]:
    """Class decorator adding a family to the registry under ``cls.name``."""
    if cls.name in _FAMILIES:
        raise ValueError(f"family {cls.name!r} registered twice")
    _FAMILIES[cls.name] = cls
    return cls


def list_families() -> list[str]:
    """Names of all registered KAN basis families, sorted."""
    return sorted(_FAMILIES)


def get_family(name: str) -> type["BasisFamily"]:
    """The family class registered as ``name``; ``ValueError`` listing valid names otherwise."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown KAN family {name!r}; valid: {', '.join(list_families())}") from None


class BasisFamily(nn.Module):
    """Input map + basis expansion of one KAN family.

    Class attributes (read by :class:`~kanseg.kan.KANConv`):
        name: registry name.
        base_activation: φ of the base branch ``Conv(W_base, φ(x))`` (``"silu"``, ``"gelu"``, ``"identity"``),
            or ``None`` for no base branch.
        post_activation: activation after the output norm (``"silu"``, ``None``, or ``"group-prelu"``).
        default_norm: norm used when the layer is built with ``norm=None``.
        norm_on_input: the layer's norm is the input map ν itself (FastKAN/RBF) and there is no output norm.
        reference_layout: ``"degree"`` (index ``n*I + c``) or ``"channel"`` (``c*P + n``): how the reference code
            orders basis channels, used only by the weight importer.
        options: the family's hyperparameters and their defaults.

    Args:
        in_channels: channels entering the basis (all groups), ``C``.
        out_channels: output channels of the basis conv (all groups).
        groups: number of channel groups ``G``.
        spatial_dims: 1, 2 or 3.
        kernel_size: kernel size of the basis conv (used for initialisation only).
        norm_module: the norm module used as ν when ``norm_on_input``; ignored otherwise.
    """

    name: ClassVar[str] = ""
    base_activation: ClassVar[str | None] = "silu"
    post_activation: ClassVar[str | None] = "silu"
    default_norm: ClassVar[str] = "instance"
    norm_on_input: ClassVar[bool] = False
    reference_layout: ClassVar[str] = "channel"
    options: ClassVar[dict] = {}
    #: the layer may compute this family in the lean layout (:mod:`kanseg.kan.lean`): it implements
    #: :meth:`basis_functions` and :meth:`constant_basis`.
    supports_lean: ClassVar[bool] = False
    #: the fused torch path may use :class:`kanseg.kernels.AnalyticExpander`: the family implements
    #: ``fast_expand(t)``, ``expand_cached(t) -> (expanded, cache)`` and ``expand_vjp(t, cache, grad) -> (dL/dt,
    #: {parameter name: gradient})`` (rbf, relu, bspline, wavelet).
    analytic_vjp: ClassVar[bool] = False

    def __init__(self, *, in_channels: int, out_channels: int, groups: int, spatial_dims: int,
                 kernel_size: int, norm_module: nn.Module | None = None, **options):
        super().__init__()
        unknown = set(options) - set(self.options)
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise ValueError(f"unknown option(s) {sorted(unknown)} for KAN family {self.name!r}; valid: {valid}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.spatial_dims = spatial_dims
        self.kernel_size = kernel_size
        self.hparams = {**self.options, **options}

    # --- the family's math -------------------------------------------------------------------------------
    @property
    def num_basis(self) -> int:
        """P: basis functions per input channel."""
        raise NotImplementedError

    def input_map(self, x: torch.Tensor) -> torch.Tensor:
        """ν: ``(B, C, *S) -> (B, C, *S)``, onto the basis domain. Identity by default."""
        return x

    def basis(self, t: torch.Tensor) -> torch.Tensor:
        """B: ``(B, C, *S) -> (B, C, P, *S)``."""
        raise NotImplementedError

    def basis_functions(self, t: torch.Tensor, skip: tuple[int, ...] = ()) -> list[torch.Tensor]:
        """The basis maps ``B_n(t)`` for n not in ``skip``, each shaped like ``t`` (the lean layout's slots)."""
        return [b for n, b in enumerate(self.basis(t).unbind(2)) if n not in skip]

    def constant_basis(self, dtype: torch.dtype, device: torch.device | None = None) -> dict[int, torch.Tensor]:
        """Basis maps that do not depend on the input: index n -> their value (0-d tensor of ``dtype``)."""
        return {}

    # --- generic plumbing --------------------------------------------------------------------------------
    def expand(self, t: torch.Tensor) -> torch.Tensor:
        """Expanded tensor in kanseg's channel-major layout: ``(B, C, *S) -> (B, C*P, *S)``."""
        return self.basis(t).flatten(1, 2)

    def make_basis_conv(self, conv: type[nn.Module], kernel_size: int, stride: int, padding: int,
                        dilation: int) -> nn.Module:
        """The convolution applied to the expanded tensor: ``(B, C*P, *S) -> (B, C_out, *S')``, grouped."""
        layer = conv(self.in_channels * self.num_basis, self.out_channels, kernel_size, stride, padding,
                     dilation, groups=self.groups, bias=False)
        # Initialise like a conv with fan-in I*P*k^N, not the reference's 5-D fan-in (docs/deviations.md, deviation 5).
        nn.init.kaiming_uniform_(layer.weight, nonlinearity="linear")
        return layer

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.hparams.items())
        return f"in_channels={self.in_channels}, groups={self.groups}, P={self.num_basis}" + (f", {opts}" if opts else "")


def check_nonneg_int(name: str, value, family: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{family}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_range(name: str, value, family: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{family}: {name} must be a pair (low, high), got {value!r}") from None
    if not lo < hi:
        raise ValueError(f"{family}: {name} must satisfy low < high, got {value!r}")
    return lo, hi
