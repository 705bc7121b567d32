"""KAN mixers of Drokin (2024): self-attention and focal modulation whose projections are KAN convolutions.

Both map ``(B, C, *S) -> (B, C, *S)`` in 1D/2D/3D and take any KAN family (``family="gram"`` by default,
``"<family>-bottleneck"`` for the bottleneck variant) plus that family's options (``degree``...). As in the
reference wrappers, every inner KAN conv and the mixer's own norm use ``norm="batch"`` (affine) by default.

Deviations from the reference (torch-conv-kan ``kan_convs/attention_conv.py``, bugs M1-M3, M7 of the spec):

* self-attention: ``y = Norm(x + γ·att)`` (SAGAN); the reference's ``Norm(γ·x + att)`` is ``residual="reference"``;
  "same" padding always, stride 1 only;
* focal modulation: the depthwise focal layers are real per-channel KAN convs (``groups = C``), so output
  channel c depends on input channel c only, through every degree; the gates are local tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kanseg.kan.factories import LayerSpec, check_spatial_dims, conv_class, get_norm
from kanseg.kan.factory import create_kan_conv, parse_family

RESIDUALS = ("sagan", "reference")


def _norm_spec(norm: LayerSpec, affine: bool) -> LayerSpec:
    """``"batch"`` -> ``("batch", {"affine": affine})``; specs with their own options are kept."""
    if isinstance(norm, str) and norm.lower() in ("batch", "instance"):
        return (norm, {"affine": affine})
    return norm


def _check_odd(name: str, k: int) -> None:
    if not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"{name} must be an odd positive integer ('same' padding), got {k!r}")


class KANSelfAttention(nn.Module):
    """Single-head SAGAN-style self-attention with KAN-conv projections ("Self-KAGNtention").

    ``a = P_in(x)`` (1x1 conv C->r with bias, if ``inner_channels``), ``q, k, v = KAN(r->r, kernel_size)(a)``,
    ``E = scale·QᵀK (B, N, N)``, ``A = softmax_j(E)``, ``o = V·Aᵀ``, ``att = P_out(o)`` (1x1 r->C with bias),
    ``y = Norm(x + γ·att)`` with γ a scalar initialised to 0 (so the mixer starts as ``Norm(x)``).

    Memory is ``B·N²`` for ``N = ∏S`` positions: inputs with more than ``max_positions`` positions are rejected.

    Args:
        spatial_dims: 1, 2 or 3.
        channels: C.
        family: KAN family of q, k, v (``"gram"``, ``"chebyshev"``, ``"gram-bottleneck"``...).
        inner_channels: absolute width r of the projections (divisible by ``groups``); ``None``: r = C, no P_in/P_out.
        kernel_size: odd kernel size of the KAN projections ("same" padding).
        groups, dilation, dropout: of the KAN projections; ``stride`` must be 1.
        norm, affine: norm of the projections and of the output (``"batch"``, affine by default).
        attn_scale: factor on the energies before the softmax (reference 1.0).
        residual: ``"sagan"`` (``Norm(x + γ·att)``) or ``"reference"`` (``Norm(γ·x + att)``).
        max_positions: largest N accepted at run time.
        **options: the family's options (``degree``, ``dim_reduction``...).
    """

    def __init__(self, spatial_dims: int, channels: int, family: str = "gram", inner_channels: int | None = None,
                 kernel_size: int = 3, groups: int = 1, stride: int = 1, dilation: int = 1, dropout: float = 0.0,
                 norm: LayerSpec = "batch", affine: bool = True, attn_scale: float = 1.0, residual: str = "sagan",
                 max_positions: int = 4096, **options: Any):
        super().__init__()
        check_spatial_dims(spatial_dims)
        _check_odd("kernel_size", kernel_size)
        if stride != 1:
            raise ValueError(f"self-attention needs stride 1 (the residual adds the input), got {stride!r}")
        if residual not in RESIDUALS:
            raise ValueError(f"unknown residual {residual!r}; valid: {', '.join(RESIDUALS)}")
        r = channels if inner_channels is None else inner_channels
        if not isinstance(r, int) or r < 1 or r % groups:
            raise ValueError(f"inner_channels ({r!r}) must be a positive integer divisible by groups ({groups})")
        conv = conv_class(spatial_dims)
        self.spatial_dims, self.channels, self.residual = spatial_dims, channels, residual
        self.attn_scale, self.max_positions = attn_scale, max_positions
        self.proj_in = conv(channels, r, 1) if inner_channels is not None else None
        self.proj_out = conv(r, channels, 1) if inner_channels is not None else None
        inner_norm = _norm_spec(norm, affine)
        make = lambda: create_kan_conv(family, spatial_dims, r, r, kernel_size, padding=dilation * (kernel_size // 2),
                                       dilation=dilation, groups=groups, dropout=dropout, norm=inner_norm, **options)
        self.query, self.key, self.value = make(), make(), make()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.norm = get_norm(inner_norm, spatial_dims, channels)

    def attention(self, a: torch.Tensor) -> torch.Tensor:
        """``(B, r, *S) -> (B, r, *S)``: ``V·softmax(scale·QᵀK)ᵀ``, accumulated in fp32 (fp64 stays fp64)."""
        shape = a.shape
        q, k, v = (m(a).flatten(2) for m in (self.query, self.key, self.value))  # (B, r, N)
        dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=a.device.type, enabled=False):
            q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
            energy = torch.bmm(q.transpose(1, 2), k) * self.attn_scale  # (B, N, N): E_ij = Σ_c q_ci k_cj
            out = torch.bmm(v, energy.softmax(dim=-1).transpose(1, 2))  # (B, r, N): o_ci = Σ_j v_cj A_ij
        return out.to(a.dtype).view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x[0, 0].numel()
        if n > self.max_positions:
            raise ValueError(f"self-attention on {tuple(x.shape[2:])} = {n} positions exceeds max_positions "
                             f"{self.max_positions} (memory B·N²); use it at a coarser level or raise max_positions")
        a = self.proj_in(x) if self.proj_in is not None else x
        att = self.attention(a)
        att = self.proj_out(att) if self.proj_out is not None else att
        y = x + self.gamma * att if self.residual == "sagan" else self.gamma * x + att
        return self.norm(y)


class KANFocalModulation(nn.Module):
    """Focal modulation (FocalNet) with KAN convs ("Focal KAGN Modulation").

    ``z = F(x)`` (KAN C->2C+L+1, kernel 1, or a 1x1 conv if not ``full_kan``), split into ``q, c_0, gates``;
    ``c_l = Φ_l(c_{l-1})`` depthwise KAN convs of kernel ``focal_window + focal_factor·(l-1)``;
    ``ctx = Σ_l c_l·g_l + mean_S(Σ_l c_l·g_l)·g_{L+1}`` (divided by L+1 if ``normalize_modulator``);
    ``u = q·H(ctx)`` (``Norm(u)`` if ``use_postln_in_modulation``); ``y = Proj(u)`` (KAN C->C, kernel 1).
    No residual inside. The bottleneck variant (``family="<f>-bottleneck"``) applies to F, H and Proj only.

    Args:
        spatial_dims: 1, 2 or 3.
        channels: C (input and output).
        family: KAN family (``"gram"`` default).
        focal_window, focal_level, focal_factor: w, L, f (all kernels odd).
        use_postln_in_modulation, normalize_modulator, full_kan: as in the reference (default True).
        dropout, norm, affine: of every KAN conv and the post-norm (``"batch"``, affine).
        **options: the family's options (``degree``, ``dim_reduction``...).
    """

    def __init__(self, spatial_dims: int, channels: int, family: str = "gram", focal_window: int = 3,
                 focal_level: int = 2, focal_factor: int = 2, use_postln_in_modulation: bool = True,
                 normalize_modulator: bool = True, full_kan: bool = True, dropout: float = 0.0,
                 norm: LayerSpec = "batch", affine: bool = True, **options: Any):
        super().__init__()
        check_spatial_dims(spatial_dims)
        if not isinstance(focal_level, int) or focal_level < 1:
            raise ValueError(f"focal_level must be a positive integer, got {focal_level!r}")
        kernels = [focal_window + focal_factor * l for l in range(focal_level)]
        for k in kernels:
            _check_odd("focal kernel size (focal_window + focal_factor·l)", k)
        c, levels = channels, focal_level
        conv = conv_class(spatial_dims)
        inner_norm = _norm_spec(norm, affine)
        base_family, _ = parse_family(family)
        kan = dict(spatial_dims=spatial_dims, dropout=dropout, norm=inner_norm)
        self.channels, self.focal_level, self.normalize_modulator = c, levels, normalize_modulator
        self.f = create_kan_conv(family, in_channels=c, out_channels=2 * c + levels + 1, kernel_size=1, **kan,
                                 **options) if full_kan else conv(c, 2 * c + levels + 1, 1)
        self.focal_layers = nn.ModuleList(
            create_kan_conv(base_family, in_channels=c, out_channels=c, kernel_size=k, padding=k // 2, groups=c,
                            **kan, **options) for k in kernels)
        self.h = create_kan_conv(family, in_channels=c, out_channels=c, kernel_size=1, **kan, **options) \
            if full_kan else conv(c, c, 1)
        self.post_norm = get_norm(inner_norm, spatial_dims, c) if use_postln_in_modulation else None
        self.proj = create_kan_conv(family, in_channels=c, out_channels=c, kernel_size=1, **kan, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, levels = self.channels, self.focal_level
        z = self.f(x)
        q, ctx, gates = z[:, :c], z[:, c:2 * c], z[:, 2 * c:]
        ctx_all = 0
        for level, layer in enumerate(self.focal_layers):
            ctx = layer(ctx)
            ctx_all = ctx_all + ctx * gates[:, level:level + 1]
        spatial = tuple(range(2, x.dim()))
        ctx_all = ctx_all + ctx_all.mean(spatial, keepdim=True) * gates[:, levels:levels + 1]
        if self.normalize_modulator:
            ctx_all = ctx_all / (levels + 1)
        u = q * self.h(ctx_all)
        if self.post_norm is not None:
            u = self.post_norm(u)
        return self.proj(u)


MIXERS: dict[str, type[nn.Module]] = {"kan-attention": KANSelfAttention, "kan-focal": KANFocalModulation}


def list_mixers() -> list[str]:
    """Names of the KAN mixers: ``kan-attention``, ``kan-focal``."""
    return sorted(MIXERS)


def create_mixer(name: str, spatial_dims: int, channels: int, **options: Any) -> nn.Module:
    """Mixer ``name`` (:func:`list_mixers`) on ``channels``: ``(B, C, *S) -> (B, C, *S)``.

    ``options``: the mixer's and its KAN family's options (``family``, ``degree``, ``inner_channels``...).
    Raises ``ValueError`` (one line, listing the valid names) for unknown names.
    """
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; valid: {', '.join(list_mixers())}")
    return MIXERS[name](spatial_dims, channels, **options)
