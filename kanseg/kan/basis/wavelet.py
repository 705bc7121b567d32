"""WavKAN: ψ((x_i − t_oi)/s_oi) for every (output, input) channel pair, then a per-output conv and a 1×1 mix."""

from __future__ import annotations

import math

import torch
from torch import nn

from kanseg.kan.basis.base import BasisFamily, register_family

_MEXICAN_HAT_NORM = 2.0 / (math.sqrt(3.0) * math.pi**0.25)


def mexican_hat(u: torch.Tensor) -> torch.Tensor:
    return _MEXICAN_HAT_NORM * (u * u - 1) * torch.exp(-0.5 * u * u)


def morlet(u: torch.Tensor) -> torch.Tensor:
    return torch.cos(5.0 * u) * torch.exp(-0.5 * u * u)


def dog(u: torch.Tensor) -> torch.Tensor:
    return -u * torch.exp(-0.5 * u * u)


WAVELETS = {"mexican_hat": mexican_hat, "morlet": morlet, "dog": dog}


@register_family
class WaveletBasis(BasisFamily):
    """WavKAN. For group g with I inputs and O outputs, the expanded tensor has O·I channels per group
    (index ``o*I + i``): ψ(u), u = (x_i − translation[o, i]) / scale[o, i]. The basis conv is a conv with
    groups = C_out over it (weights ``(C_out, I, k…)``) followed by a grouped 1×1 conv O → O.

    ``scale`` / ``translation``: ``(C_out, I)``, learnable. Base branch SiLU(x); output Norm(·) (BatchNorm by
    default, as in the reference), no activation. P = O (output channels per group).
    """

    name = "wavelet"
    post_activation = None
    default_norm = "batch"
    options = {"wavelet_type": "mexican_hat"}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        wtype = self.hparams["wavelet_type"]
        if wtype not in WAVELETS:
            raise ValueError(f"wavelet: unknown wavelet_type {wtype!r}; valid: {', '.join(WAVELETS)}")
        self.psi = WAVELETS[wtype]
        per_group_in = self.in_channels // self.groups
        self.scale = nn.Parameter(torch.ones(self.out_channels, per_group_in))
        self.translation = nn.Parameter(torch.zeros(self.out_channels, per_group_in))

    @property
    def num_basis(self) -> int:
        return self.out_channels // self.groups

    def basis(self, t):
        """``(B, C, *S) -> (B, G*O*I, *S)`` (already flat: the layout is per (output, input) pair)."""
        b, g = t.shape[0], self.groups
        spatial = t.shape[2:]
        x = t.reshape(b, g, 1, -1, *spatial)                                   # (B, G, 1, I, *S)
        shape = (1, g, self.num_basis, -1) + (1,) * len(spatial)
        u = (x - self.translation.view(shape).to(t.dtype)) / self.scale.view(shape).to(t.dtype)  # (B, G, O, I, *S)
        return self.psi(u).reshape(b, -1, *spatial)

    def expand(self, t):
        return self.basis(t)

    def make_basis_conv(self, conv, kernel_size, stride, padding, dilation):
        per_output = conv(self.out_channels * (self.in_channels // self.groups), self.out_channels, kernel_size,
                          stride, padding, dilation, groups=self.out_channels, bias=False)
        mix = conv(self.out_channels, self.out_channels, 1, groups=self.groups, bias=False)
        for layer in (per_output, mix):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="linear")
        return nn.Sequential(per_output, mix)
