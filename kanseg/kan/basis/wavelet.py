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


# --- for the fused torch path: ψ overwriting its argument, and ψ' as a new tensor ---------------------------------
def _gauss(u: torch.Tensor) -> torch.Tensor:
    return (u * u).mul_(-0.5).exp_()


def _mexican_hat_inplace(u):
    sq = u.square_()
    e = sq.mul(-0.5).exp_()
    return sq.sub_(1).mul_(e).mul_(_MEXICAN_HAT_NORM)


def _mexican_hat_grad(u):  # N·u·(3 − u²)·e^{−u²/2}
    return (u * u).neg_().add_(3).mul_(u).mul_(_gauss(u)).mul_(_MEXICAN_HAT_NORM)


def _morlet_inplace(u):
    e = _gauss(u)
    return u.mul_(5.0).cos_().mul_(e)


def _morlet_grad(u):  # −(5·sin 5u + u·cos 5u)·e^{−u²/2}
    five = u * 5.0
    return five.sin().mul_(5.0).add_(five.cos_().mul_(u)).mul_(_gauss(u)).neg_()


def _dog_inplace(u):
    e = _gauss(u)
    return u.neg_().mul_(e)


def _dog_grad(u):  # (u² − 1)·e^{−u²/2}
    return (u * u).sub_(1).mul_(_gauss(u))


_FAST = {"mexican_hat": (_mexican_hat_inplace, _mexican_hat_grad), "morlet": (_morlet_inplace, _morlet_grad),
         "dog": (_dog_inplace, _dog_grad)}


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

    # --- the fused torch path (kanseg.kernels.AnalyticExpander): u = (x − τ)/s, dL/dx_i = Σ_o G·ψ'(u)/s,
    # dL/dτ = −Σ G·ψ'(u)/s, dL/ds = −Σ G·ψ'(u)·u/s (sums over the batch and space for the parameters) ---------
    analytic_vjp = True

    def _u(self, t):
        b, g = t.shape[0], self.groups
        spatial = t.shape[2:]
        x = t.reshape(b, g, 1, -1, *spatial)
        shape = (1, g, self.num_basis, -1) + (1,) * len(spatial)
        return (x - self.translation.view(shape).to(t.dtype)).div_(self.scale.view(shape).to(t.dtype))

    def fast_expand(self, t):
        return _FAST[self.hparams["wavelet_type"]][0](self._u(t)).reshape(t.shape[0], -1, *t.shape[2:])

    def expand_cached(self, t):
        u = self._u(t)
        return self.psi(u).reshape(t.shape[0], -1, *t.shape[2:]), u

    def expand_vjp(self, t, cache, grad):
        u = cache
        spatial = t.shape[2:]
        shape = (1, self.groups, self.num_basis, -1) + (1,) * len(spatial)
        w = _FAST[self.hparams["wavelet_type"]][1](u).mul_(grad.view_as(u)).div_(self.scale.view(shape).to(t.dtype))
        grad_t = w.sum(2).reshape(t.shape)
        own = {}
        if self.scale.requires_grad or self.translation.requires_grad:
            dims = [0, *range(4, w.dim())]
            own = {"translation": -w.sum(dims).reshape(self.translation.shape),
                   "scale": -w.mul_(u).sum(dims).reshape(self.scale.shape)}
        return grad_t, own

    def make_basis_conv(self, conv, kernel_size, stride, padding, dilation):
        per_output = conv(self.out_channels * (self.in_channels // self.groups), self.out_channels, kernel_size,
                          stride, padding, dilation, groups=self.out_channels, bias=False)
        mix = conv(self.out_channels, self.out_channels, 1, groups=self.groups, bias=False)
        for layer in (per_output, mix):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="linear")
        return nn.Sequential(per_output, mix)
