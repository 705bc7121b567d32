"""Parameter-efficient fine-tuning (PEFT) of trained KAN convs: extra degrees, trainable degrees, exact fuse-back.

A trained :class:`~kanseg.kan.KANConv` of degree D whose family is a three-term recurrence (``gram``, ``chebyshev``,
``legendre``, ``jacobi``; plain or the inner basis conv of ``-bottleneck``) is wrapped by :class:`PEFTKANConv`.
Every trained tensor is frozen; the new tensors, all zero at wrap time, are

- E = ``extra_degrees`` new degrees D+1 … D+E: basis weights X_j (the weights of basis map D+1+j) and, for ``gram``,
  their recurrence coefficients ε_j;
- T = ``trainable_degrees``: additive deltas Δ_d on the weights of the existing basis maps d ∈ T and, for ``gram``,
  δ_d on the coefficient that builds p_d.

The wrapped layer computes exactly the plain layer of degree D' = D + E with (spec section 2.2–2.3)

    W'_n = W_n + [n ∈ T]·Δ_n  (n ≤ D),          W'_{D+1+j} = X_j  (j < E),
    ŵ_n  = w_n + [n+1 ∈ T]·δ_{n+1}  (n < D),    ŵ_{D+j} = ε_j  (j < E),    ŵ_{D'} = 0  (never used),

where p_m uses ŵ_{m−1} (``kanseg.kernels.recurrences``). Its forward *is* that layer's forward with W' and ŵ put in
by ``torch.func.functional_call`` (eager and fused-kernel paths alike), so :meth:`PEFTKANConv.fuse` returns a plain
:class:`~kanseg.kan.KANConv` of degree D' equal to the PEFT layer up to float rounding, and the PEFT layer equals
the trained layer at wrap time. The reference's bugs (forward reading ε at a shifted, wrapped index; fuse putting
the coefficient deltas one slot too high; dead δ_0, δ_1; an int Parameter for the indices) are not repeated:
``gram`` accepts T ⊆ {2 … D} (δ_0 and δ_1 would be dead). The fixed-coefficient families have no coefficients to
adapt, so their deltas are weight deltas only and T ⊆ {0 … D}.

Model level: :func:`~kanseg.kan.peft.apply_peft` and :func:`~kanseg.kan.peft.fuse_peft`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.kan.basis import get_family
from kanseg.kan.layers import KANConv
from kanseg.kernels.recurrences import get_recurrence, recurrence_names

#: the PEFT options and their defaults (what a checkpoint records).
PEFT_OPTIONS = {"extra_degrees": 1, "trainable_degrees": (), "finetune_base": False, "freeze_norm": False}


def unsupported_reason(module: nn.Module) -> str | None:
    """Why ``module`` cannot be wrapped by :class:`PEFTKANConv`, or ``None`` when it can."""
    if not isinstance(module, KANConv):
        return f"{type(module).__name__} is not a KANConv"
    if get_recurrence(module.family) is None:
        return (f"family {module.family!r} is not a three-term recurrence (PEFT supports "
                f"{', '.join(recurrence_names())})")
    return None


def trainable_degree_range(conv: KANConv) -> range:
    """The degrees that may get deltas: {2 … D} for ``gram`` (δ_0, δ_1 would be dead), {0 … D} otherwise."""
    low = 2 if get_recurrence(conv.family).learnable else 0
    return range(low, conv.basis.degree + 1)


def check_options(conv: KANConv, extra_degrees, trainable_degrees, finetune_base: bool,
                  name: str = "") -> tuple[int, tuple[int, ...]]:
    """Validated ``(E, sorted T)`` for wrapping ``conv``; :class:`KansegError` (one line) otherwise."""
    where = f" for layer {name!r}" if name else ""
    if not isinstance(extra_degrees, int) or isinstance(extra_degrees, bool) or extra_degrees < 0:
        raise KansegError(f"peft: extra_degrees must be an integer >= 0, got {extra_degrees!r}")
    degrees = list(trainable_degrees or ())
    if any(not isinstance(d, int) or isinstance(d, bool) for d in degrees) or len(set(degrees)) != len(degrees):
        raise KansegError(f"peft: trainable_degrees must be distinct integers, got {list(degrees)!r}")
    valid = trainable_degree_range(conv)
    outside = sorted(d for d in degrees if d not in valid)
    if outside:
        span = f"{valid.start}..{valid.stop - 1}" if len(valid) else "none"
        raise KansegError(f"peft: trainable_degrees {outside} outside the valid range {span}{where} "
                          f"({conv.family}, degree {conv.basis.degree})")
    if extra_degrees == 0 and not degrees and not (finetune_base and conv.base_conv is not None):
        raise KansegError("peft: nothing to train; set extra_degrees > 0, trainable_degrees or finetune_base")
    return extra_degrees, tuple(sorted(degrees))


def with_degree(conv: KANConv, degree: int, *, share: bool) -> KANConv:
    """A :class:`KANConv` like ``conv`` but of ``degree``: a new basis family and basis conv, the other parts
    (base conv, projections, norm, activation, dropout) shared with ``conv`` (``share``; the new basis tensors are
    then placeholders on the meta device) or copied."""
    memo = {id(child): child for child in conv.children()} if share else {}
    layer = copy.deepcopy(conv, memo)
    old, first = conv.basis, conv.basis_conv
    device = torch.device("meta") if share else first.weight.device
    with torch.device(device):
        layer.basis = get_family(conv.family)(
            in_channels=old.in_channels, out_channels=old.out_channels, groups=old.groups,
            spatial_dims=old.spatial_dims, kernel_size=old.kernel_size, **{**old.hparams, "degree": degree})
        layer.basis_conv = layer.basis.make_basis_conv(type(first), first.kernel_size, first.stride, first.padding,
                                                       first.dilation)
    layer.basis.to(first.weight.dtype)
    layer.basis_conv.to(first.weight.dtype)
    return layer


class PEFTKANConv(nn.Module):
    """A frozen trained :class:`~kanseg.kan.KANConv` plus new degrees and deltas (see the module docstring).

    Args:
        conv: the trained layer; its parameters are frozen in place (``requires_grad`` off) and it is kept as
            ``self.conv``, untouched otherwise.
        extra_degrees: E ≥ 0 new degrees.
        trainable_degrees: T, existing degrees getting deltas ({2 … D} for gram, {0 … D} otherwise).
        finetune_base: keep the base conv ``conv.base_conv`` trainable.
        freeze_norm: freeze the norm's affine parameters and keep the norm in eval mode (fixed running statistics);
            by default the norm trains as usual.

    New parameters (``None`` when empty): ``extra_weight (C_out_b, I, E, k…)``,
    ``delta_weight (C_out_b, I, |T|, k…)`` and, for families with learnable coefficients (``gram``),
    ``extra_coefficients (E,)`` and ``delta_coefficients (|T|,)``. ``C_out_b``/``I``: output channels / input channels
    per group of the basis conv.
    Trainable count: (E + |T|)·C_out_b·I·k^N (+ E + |T| for gram) (+ norm affine) (+ base conv if asked).

    Shapes: ``(B, C_in, *S) -> (B, C_out, *S')``, as the wrapped layer.
    """

    def __init__(self, conv: KANConv, *, extra_degrees: int = 1, trainable_degrees: Iterable[int] = (),
                 finetune_base: bool = False, freeze_norm: bool = False):
        reason = unsupported_reason(conv)
        if reason:
            raise KansegError(f"peft: cannot wrap this layer: {reason}")
        extra_degrees, trainable_degrees = check_options(conv, extra_degrees, trainable_degrees, finetune_base)
        super().__init__()
        self.conv = conv
        self.extra_degrees, self.trainable_degrees = extra_degrees, trainable_degrees
        self.finetune_base, self.freeze_norm = bool(finetune_base), bool(freeze_norm)
        self.degree = conv.basis.degree
        self.learnable = get_recurrence(conv.family).learnable  # "beta" for gram, else None

        conv.requires_grad_(False)
        if finetune_base and conv.base_conv is not None:
            conv.base_conv.requires_grad_(True)
        conv.norm.requires_grad_(not freeze_norm)

        weight = conv.basis_conv.weight                           # (C_out_b, I·(D+1), k…), channel-major
        out_b, kernel = weight.shape[0], weight.shape[2:]
        self.in_per_group = weight.shape[1] // (self.degree + 1)
        e, t = extra_degrees, len(trainable_degrees)
        self.extra_weight = nn.Parameter(weight.new_zeros(out_b, self.in_per_group, e, *kernel)) if e else None
        self.delta_weight = nn.Parameter(weight.new_zeros(out_b, self.in_per_group, t, *kernel)) if t else None
        self.extra_coefficients = self.delta_coefficients = None
        if self.learnable:
            coefficients = getattr(conv.basis, self.learnable)
            self.extra_coefficients = nn.Parameter(coefficients.new_zeros(e)) if e else None
            self.delta_coefficients = nn.Parameter(coefficients.new_zeros(t)) if t else None
        self.register_buffer("delta_index", torch.tensor(trainable_degrees, dtype=torch.long, device=weight.device),
                             persistent=False)
        # The layer of degree D' that the forward runs with W', ŵ: shares every other part with ``conv`` and is not
        # a registered submodule (its own basis tensors are meta placeholders, always replaced).
        object.__setattr__(self, "_view", with_degree(conv, self.fused_degree, share=True))
        self.train(conv.training)

    @classmethod
    def wrap(cls, conv: KANConv, **options) -> PEFTKANConv:
        """``PEFTKANConv(conv, **options)``."""
        return cls(conv, **options)

    @property
    def fused_degree(self) -> int:
        """D' = D + E."""
        return self.degree + self.extra_degrees

    @property
    def options(self) -> dict:
        """The PEFT options of this layer (:data:`PEFT_OPTIONS` keys)."""
        return {"extra_degrees": self.extra_degrees, "trainable_degrees": list(self.trainable_degrees),
                "finetune_base": self.finetune_base, "freeze_norm": self.freeze_norm}

    def fused_weight(self) -> torch.Tensor:
        """W': ``(C_out_b, I·(D'+1), k…)`` in kanseg's channel-major layout (channel c·(D'+1) + n)."""
        weight = self.conv.basis_conv.weight
        blocks = weight.view(weight.shape[0], self.in_per_group, self.degree + 1, *weight.shape[2:])
        if self.delta_weight is not None:
            blocks = blocks.index_add(2, self.delta_index, self.delta_weight.to(blocks.dtype))
        if self.extra_weight is not None:
            blocks = torch.cat([blocks, self.extra_weight.to(blocks.dtype)], dim=2)
        return blocks.flatten(1, 2)

    def fused_coefficients(self) -> torch.Tensor | None:
        """ŵ (D'+1 scalars) for a family with learnable coefficients, else ``None``."""
        if not self.learnable:
            return None
        trained = getattr(self.conv.basis, self.learnable)
        live = trained[: self.degree]                             # ŵ_0 … ŵ_{D−1}
        if self.delta_coefficients is not None:                   # δ_d adapts ŵ_{d−1}, which builds p_d
            live = live.index_add(0, self.delta_index - 1, self.delta_coefficients.to(live.dtype))
        parts = [live] + ([self.extra_coefficients.to(live.dtype)] if self.extra_coefficients is not None else [])
        return torch.cat([*parts, live.new_zeros(1)])

    def fused_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors of the degree-D' layer that differ from the wrapped one, by parameter name."""
        tensors = {"basis_conv.weight": self.fused_weight()}
        if self.learnable:
            tensors[f"basis.{self.learnable}"] = self.fused_coefficients()
        return tensors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self._view, self.fused_tensors(), (x,), strict=False)

    def train(self, mode: bool = True) -> PEFTKANConv:
        super().train(mode)
        self._view.training = mode  # its own (meta) basis parts are not submodules; nothing in them reads it
        if self.freeze_norm:
            self.conv.norm.eval()
        return self

    @torch.no_grad()
    def fuse(self) -> KANConv:
        """A new plain :class:`KANConv` of degree D + E computing what this layer computes (this one is untouched);
        its parameters are all trainable, its mode is this layer's."""
        fused = with_degree(self.conv, self.fused_degree, share=False)
        for name, tensor in self.fused_tensors().items():
            fused.get_parameter(name).copy_(tensor)
        fused.requires_grad_(True)
        return fused.train(self.training)

    def extra_repr(self) -> str:
        return (f"extra_degrees={self.extra_degrees}, trainable_degrees={list(self.trainable_degrees)}, "
                f"finetune_base={self.finetune_base}, freeze_norm={self.freeze_norm}, "
                f"degree {self.degree} -> {self.fused_degree}")
