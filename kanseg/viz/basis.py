"""The learned univariate functions of a KAN convolution: what makes a KAN readable.

For output channel ``o`` and input channel ``i`` of a trained :class:`~kanseg.kan.KANConv`, the edge function is

    φ_oi(x) = Σ_n W[o, i·P + n, centre] · B_n(ν(x))  +  W_base[o, i, centre] · φ_base(x)

(the basis term and the base-branch term; the layer's output is Post(Σ_i Σ_taps φ_oi(x_i at that tap))).
Nothing here knows a family's formulas: ν and B come from ``layer.basis.input_map`` / ``layer.basis.expand``
evaluated on a grid, and the weights are applied by the layer's own convolutions cut down to one tap
(``taps="centre"``) or summed over the taps (``taps="sum"``: the response to a spatially constant input).
Grouped layers, the wavelet family's per-(output, input) basis and the bottleneck variant are all handled.

Two caveats, both visible in the returned object:

- Families whose ν uses image statistics (``legendre``: min-max per sample; ``rbf``: InstanceNorm) are evaluated
  with the grid itself as the image, i.e. for an input whose values span ``x_range`` uniformly.
- For a bottleneck layer the basis functions act on the inner channels z = inner_proj(x) and are composed with
  ``out_proj``; the base branch acts on x, a different variable, so ``base`` is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kanseg.errors import KansegError
from kanseg.kan import KANConv
from kanseg.kan.basis.wavelet import WaveletBasis

TAPS = ("centre", "sum")


@dataclass
class LearnedFunctions:
    """Edge functions of one KAN layer sampled on a grid.

    Attributes:
        x: ``(N,)`` grid of input values (layer input x; inner channel z for a bottleneck layer).
        basis: ``(C_out, C_sel, N)`` basis term of φ_oi for the selected input channels.
        base: ``(C_out, C_sel, N)`` base-branch term, or ``None`` (no base branch, or bottleneck layer).
        inputs: the input-channel indices of the ``C_sel`` axis.
        family: the layer's family name (``"gram"``...), with ``-bottleneck`` for the bottleneck variant.
        taps: ``"centre"`` or ``"sum"``.
    """

    x: torch.Tensor
    basis: torch.Tensor
    base: torch.Tensor | None
    inputs: list[int]
    family: str
    taps: str

    @property
    def total(self) -> torch.Tensor:
        """``(C_out, C_sel, N)``: φ_oi(x) = basis term + base term."""
        return self.basis if self.base is None else self.basis + self.base


def find_kan_layers(model: nn.Module) -> list[tuple[str, KANConv]]:
    """``(qualified name, layer)`` of every :class:`~kanseg.kan.KANConv` in ``model``, in module order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, KANConv)]


def basis_channel_owner(basis: nn.Module) -> torch.Tensor:
    """``(K,)`` long: the basis-input channel each channel of ``basis.expand``'s output depends on.

    kanseg's layout is channel-major (``c·P + n`` → c); the wavelet family expands every (output, input) pair
    (``g·O·I + o·I + i`` → ``g·I + i``).
    """
    channels, per_channel = basis.in_channels, basis.num_basis
    if isinstance(basis, WaveletBasis):
        groups = basis.groups
        per_in, per_out = channels // groups, per_channel
        group = torch.arange(groups).repeat_interleave(per_out * per_in)
        return group * per_in + torch.arange(per_in).repeat(groups * per_out)
    return torch.arange(channels).repeat_interleave(per_channel)


@torch.no_grad()
def basis_curves(layer: KANConv, *, x_range: tuple[float, float] = (-2.0, 2.0), steps: int = 201,
                 channel: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The basis functions of one input channel, B_n(ν(x)) on a grid: ``(x (N,), curves (P, N))``.

    For the wavelet family these are the O wavelets ψ((x − t_o,c)/s_o,c) of that channel. ν is evaluated with the
    grid as the image, as in :func:`learned_functions`.
    """
    if not isinstance(layer, KANConv):
        raise KansegError(f"basis_curves needs a KANConv layer, got {type(layer).__name__}")
    x, grid = _grid(layer, x_range, steps)
    if not 0 <= channel < grid.shape[1]:
        raise KansegError(f"input channel {channel} out of range 0..{grid.shape[1] - 1}")
    expanded = layer.basis.expand(layer.basis.input_map(grid))
    mine = basis_channel_owner(layer.basis) == channel
    return x, expanded[0, mine.to(expanded.device)].reshape(int(mine.sum()), steps)


def _grid(layer: KANConv, x_range: tuple[float, float], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (N,) and the input ``(1, C, N, 1…)`` holding ``x`` on every basis-input channel."""
    lo, hi = (float(v) for v in x_range)
    if not lo < hi or steps < 2:
        raise KansegError(f"need x_range low < high and steps >= 2, got x_range={x_range}, steps={steps}")
    param = next(layer.parameters())
    x = torch.linspace(lo, hi, steps, dtype=param.dtype, device=param.device)
    shape = (1, layer.basis.in_channels, steps, *([1] * (layer.spatial_dims - 1)))
    return x, x.view(1, 1, steps, *([1] * (layer.spatial_dims - 1))).expand(shape).contiguous()


def _one_tap_weight(conv: nn.Module, taps: str) -> torch.Tensor:
    """Weight ``(O, I/G, k, ...)`` of a conv reduced to a 1-tap kernel ``(O, I/G, 1, ...)``."""
    weight = conv.weight
    spatial = tuple(range(2, weight.dim()))
    if taps == "sum":
        return weight.sum(dim=spatial, keepdim=True)
    centre = tuple(slice(k // 2, k // 2 + 1) for k in weight.shape[2:])
    return weight[(slice(None), slice(None), *centre)]


def _apply_one_tap(module: nn.Module, x: torch.Tensor, taps: str) -> torch.Tensor:
    """A conv (or Sequential of convs) with every kernel cut to one tap: ``(B, C, N, 1…) -> (B, C', N, 1…)``."""
    convs = list(module) if isinstance(module, nn.Sequential) else [module]
    for conv in convs:
        if not isinstance(conv, nn.modules.conv._ConvNd):
            raise KansegError(f"cannot read learned functions through a {type(conv).__name__} (expected a conv)")
        fn = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        x = fn(x, _one_tap_weight(conv, taps), conv.bias, groups=conv.groups)
    return x


def _per_input(values: torch.Tensor, owner: torch.Tensor, inputs: Sequence[int]) -> torch.Tensor:
    """``(1, K, N, 1…)`` -> ``(C_sel, K, N, 1…)``: sample ``s`` keeps only the channels owned by ``inputs[s]``."""
    keep = owner.to(values.device)[None, :] == torch.as_tensor(list(inputs), device=values.device)[:, None]
    return values * keep.view(*keep.shape, *([1] * (values.dim() - 2))).to(values.dtype)


@torch.no_grad()
def learned_functions(layer: KANConv, *, x_range: tuple[float, float] = (-2.0, 2.0), steps: int = 201,
                      inputs: Sequence[int] | None = None, taps: str = "centre") -> LearnedFunctions:
    """Sample the edge functions φ_oi of ``layer`` on ``steps`` points of ``x_range``.

    Args:
        layer: a (trained) KAN convolution of any family, 1D/2D/3D, grouped or bottleneck.
        x_range: (low, high) of the grid of input values.
        steps: grid points N (≥ 2).
        inputs: input channels to evaluate (default: all of them; the wavelet family costs O·I·N per channel).
        taps: ``"centre"`` (the kernel's centre tap) or ``"sum"`` (all taps summed).

    Returns:
        :class:`LearnedFunctions` with ``basis`` / ``base`` of shape ``(C_out, len(inputs), steps)``.
        Entries for an (o, i) pair in different groups are zero.
    """
    if not isinstance(layer, KANConv):
        raise KansegError(f"learned_functions needs a KANConv layer, got {type(layer).__name__}")
    if taps not in TAPS:
        raise KansegError(f"unknown taps {taps!r}; valid: {', '.join(TAPS)}")
    basis = layer.basis
    channels = basis.in_channels  # C_in, or G·r inside a bottleneck
    inputs = list(range(channels)) if inputs is None else [int(i) for i in inputs]
    bad = [i for i in inputs if not 0 <= i < channels]
    if bad or not inputs:
        raise KansegError(f"input channels {bad or inputs} out of range 0..{channels - 1}")

    x, grid = _grid(layer, x_range, steps)
    was_training = layer.training
    layer.eval()
    try:
        expanded = basis.expand(basis.input_map(grid))                 # (1, K, N, 1…)
        out = _apply_one_tap(layer.basis_conv, _per_input(expanded, basis_channel_owner(basis), inputs), taps)
        if layer.out_proj is not None:
            out = _apply_one_tap(layer.out_proj, out, taps)
        base_term = None
        if layer.base_conv is not None and layer.inner_proj is None:
            activated = layer.base_act(grid)
            base_term = _apply_one_tap(layer.base_conv, _per_input(activated, torch.arange(channels), inputs), taps)
    finally:
        layer.train(was_training)

    def shaped(t: torch.Tensor) -> torch.Tensor:  # (C_sel, C_out, N, 1…) -> (C_out, C_sel, N)
        return t.reshape(t.shape[0], t.shape[1], steps).transpose(0, 1).contiguous()

    family = layer.family + ("-bottleneck" if layer.is_bottleneck else "")
    return LearnedFunctions(x, shaped(out), None if base_term is None else shaped(base_term), inputs, family, taps)
