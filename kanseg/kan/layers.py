"""The generic KAN convolution layer (any family, 1D/2D/3D, grouped, optional bottleneck).

    y = Post( Conv(W_base, φ(x)) + BasisConv(B(ν(x))) )          (plain)
    y = Post( Conv(W_base, φ(x)) + out_proj(BasisConv(B(ν(inner_proj(x))))) )   (bottleneck)

Groups are real grouped convolutions: one conv call per branch, and every group's basis stays in its group.
"""

from __future__ import annotations

import torch
from torch import nn

from kanseg import kernels  # fused path; kanseg.kernels never imports kanseg.kan
from kanseg.kan import lean
from kanseg.kan.basis import get_family
from kanseg.kan.factories import (
    GroupPReLU,
    LayerSpec,
    check_spatial_dims,
    conv_class,
    get_activation,
    get_norm,
)
from kanseg.kan.regularization import DROPOUT_PLACEMENTS, make_dropout


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def bottleneck_width(in_per_group: int, out_per_group: int, dim_reduction: float, min_internal: int = 16) -> int:
    """Inner width r of the bottleneck per group: ⌊max(I, O)/dim_reduction⌋, raised to min(16, I, O) if below 16."""
    if dim_reduction <= 0:
        raise ValueError(f"dim_reduction must be > 0, got {dim_reduction!r}")
    r = int(max(in_per_group / dim_reduction, out_per_group / dim_reduction))
    if r < min_internal:
        r = min(min_internal, in_per_group, out_per_group)
    return r


class KANConv(nn.Module):
    """KAN convolution of any registered family.

    Args:
        family: registry name (``kanseg.kan.list_families()``).
        spatial_dims: 1, 2 or 3.
        in_channels / out_channels: C_in, C_out (both divisible by ``groups``).
        kernel_size, stride, padding, dilation: as for ``nn.ConvNd`` (ints); zero padding applies to the basis.
        groups: channel groups G (real grouped convolutions).
        dropout: probability of the layer's dropout (spec §3.1), placed by ``dropout_placement``.
        dropout_placement: ``poly`` (on ν(x), before the basis; the default), ``full`` (on the layer input, before
            both branches) or ``degree`` (on the basis tensor B(ν(x)): single (channel, degree) maps).
        dropout_kind: ``channel`` (``DropoutNd``) or ``noise`` (:class:`~kanseg.kan.regularization.NoiseInjection`
            with ``noise_alpha`` and ``noise_std_over``).
        norm: ``"instance"``, ``"batch"``, ``"group"``, ``"none"`` or another MONAI ``Norm`` name, or
            ``(name, options)`` such as ``("instance", {"affine": True})``; ``None`` for the family default.
        act: the activation after the norm, a MONAI ``Act`` name (plus ``silu``, ``identity``) or
            ``(name, options)`` such as ``("leakyrelu", {"negative_slope": 0.1})``; ``None`` for the family's.
        bottleneck: the paper's parameter-efficient variant: 1×1 ``inner_proj`` C_in→G·r, the basis branch on r
            channels per group, 1×1 ``out_proj`` G·r→C_out; the base branch stays full width.
        dim_reduction: bottleneck reduction factor (r = ⌊max(I, O)/dim_reduction⌋, at least min(16, I, O)).
        **options: the family's hyperparameters (e.g. ``degree``).

    Shapes: ``(B, C_in, *S) -> (B, C_out, *S')`` with the usual conv output size.
    """

    def __init__(self, family: str, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1, dropout: float = 0.0,
                 norm: LayerSpec = None, bottleneck: bool = False, dim_reduction: float = 4.0,
                 act: LayerSpec = None, dropout_placement: str = "poly", dropout_kind: str = "channel",
                 noise_alpha: float = 0.05, noise_std_over: str = "channel", **options):
        super().__init__()
        family_cls = get_family(family)
        check_spatial_dims(spatial_dims)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation),
                            ("groups", groups)):
            _positive_int(name, value)
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible "
                             f"by groups ({groups})")
        norm = family_cls.default_norm if norm is None else norm
        conv = conv_class(spatial_dims)
        self.family = family
        self.spatial_dims = spatial_dims
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.is_bottleneck = bottleneck

        basis_in, basis_out = in_channels, out_channels
        self.inner_proj = self.out_proj = None
        if bottleneck:
            r = bottleneck_width(in_channels // groups, out_channels // groups, dim_reduction)
            basis_in = basis_out = r * groups
            self.inner_proj = conv(in_channels, basis_in, 1, groups=groups, bias=False)
            self.out_proj = conv(basis_out, out_channels, 1, groups=groups, bias=False)

        norm_module = get_norm(norm, spatial_dims, basis_in) if family_cls.norm_on_input else None
        self.basis = family_cls(in_channels=basis_in, out_channels=basis_out, groups=groups,
                                spatial_dims=spatial_dims, kernel_size=kernel_size, norm_module=norm_module, **options)
        if dropout_placement not in DROPOUT_PLACEMENTS:
            raise ValueError(f"unknown dropout_placement {dropout_placement!r}; valid: {', '.join(DROPOUT_PLACEMENTS)}")
        self.dropout_placement = dropout_placement
        self.dropout = make_dropout(spatial_dims, dropout, dropout_kind, noise_alpha, noise_std_over)
        # the fused kernels apply a channel-dropout scale at the poly placement only
        self._fusable = self.dropout is None or (dropout_kind == "channel" and dropout_placement != "degree")
        self.basis_conv = self.basis.make_basis_conv(conv, kernel_size, stride, padding, dilation)

        self.base_conv = None
        if family_cls.base_activation is not None:
            self.base_act = get_activation(family_cls.base_activation)
            self.base_conv = conv(in_channels, out_channels, kernel_size, stride, padding, dilation,
                                  groups=groups, bias=False)
        self.norm = nn.Identity() if family_cls.norm_on_input else get_norm(norm, spatial_dims, out_channels)
        post = family_cls.post_activation if act is None else act
        self.act = GroupPReLU(groups, out_channels) if post == "group-prelu" else get_activation(post)
        for layer in (self.base_conv, self.inner_proj, self.out_proj):
            if layer is not None:
                nn.init.kaiming_uniform_(layer.weight, nonlinearity="linear")
        self._lean = lean.supports_lean(self)

    def expand(self, z: torch.Tensor, fast: bool = False) -> torch.Tensor:
        """Expanded basis tensor ``B(ν(z))``: ``(B, C, *S) -> (B, C*P, *S)``, computed in fp32 (autocast off).

        Under autocast the result stays fp32 (the following conv casts it); otherwise it takes ``z``'s dtype.
        ``fast``: the family's in-place ``fast_expand`` (no autograd; families with ``analytic_vjp``).
        """
        autocast_on = torch.is_autocast_enabled(z.device.type)
        with torch.autocast(device_type=z.device.type, enabled=False):
            t = self.basis.input_map(z if z.dtype == torch.float64 else z.float())
            if self.dropout is not None and self.dropout_placement == "poly":
                t = self.dropout(t)
            expanded = self.basis.fast_expand(t) if fast else self.basis.expand(t)
            if self.dropout is not None and self.dropout_placement == "degree":
                expanded = self.dropout(expanded)
        return expanded if autocast_on or z.dtype == torch.float64 else expanded.to(z.dtype)

    def _fast_inference(self, z: torch.Tensor) -> bool:
        """No gradient recorded, not ``KANSEG_KERNELS=eager``, a family with an in-place expansion, no active
        dropout: the expansion may overwrite its temporaries."""
        return (getattr(self.basis, "analytic_vjp", False) and not torch.is_grad_enabled()
                and (self.dropout is None or not self.training) and kernels.kernel_mode() != "eager")

    def basis_branch(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S) -> (B, C_out, *S')``: the KAN part of the layer."""
        z = self.inner_proj(x) if self.inner_proj is not None else x
        # --- kanseg.kan.lean: fused/auto modes on the torch backend fold the constant basis maps ---------------
        if self._lean and kernels.kernel_mode() != "eager" and kernels.select_backend(z, self.family) == "torch":
            y = lean.lean_basis_branch(self, z, fused=kernels.use_fused(z))
        # --- kanseg.kernels: fused, memory-saving path (KANSEG_KERNELS=eager|fused|auto) -----------------------
        elif self._fusable and kernels.use_fused(z):
            poly_dropout = self.dropout if self.dropout_placement == "poly" else None
            y = kernels.basis_conv(z, self.basis, self.basis_conv, poly_dropout)
        elif self._fast_inference(z):  # no gradients: the analytic families' in-place expansion (1.5-2.3x faster)
            y = self.basis_conv(self.expand(z, fast=True))
        else:
            y = self.basis_conv(self.expand(z))
        # --- end kanseg.kernels ----------------------------------------------------------------------------------
        return self.out_proj(y) if self.out_proj is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}({self.family}) expects (B, {self.in_channels}, "
                             f"{'*' * self.spatial_dims}) input with {self.spatial_dims} spatial dims, "
                             f"got shape {tuple(x.shape)}")
        if self.dropout is not None and self.dropout_placement == "full":
            x = self.dropout(x)
        y = self.basis_branch(x)
        if self.base_conv is not None:
            # --- kanseg.kernels: base branch recomputes φ(x) in backward instead of saving it -------------------
            if kernels.use_fused(x):
                y = y + kernels.activation_conv(x, self.base_act, self.base_conv)
            else:
                y = y + self.base_conv(self.base_act(x))
            # --- end kanseg.kernels ------------------------------------------------------------------------------
        return self.act(self.norm(y))

    def extra_repr(self) -> str:
        return (f"family={self.family!r}, spatial_dims={self.spatial_dims}, {self.in_channels}->"
                f"{self.out_channels}, groups={self.groups}, bottleneck={self.is_bottleneck}")
