"""What a family's Triton kernels must provide, and their registry by family name (no triton import here).

Every three-term recurrence of :mod:`kanseg.kernels.recurrences` has kernels (one generic class reads its
definition); the other families register hand-written kernels here.
"""

from __future__ import annotations

import torch

from kanseg.kernels.recurrences import get_recurrence, recurrence_names

#: families with hand-written Triton kernels (``kanseg.kernels.triton_families`` registers exactly these).
HANDWRITTEN_FAMILIES = ("bernstein", "rbf", "relu")
_TRITON_BASES: dict[str, type["TritonBasis"]] = {}
_RECURRENCE_KERNELS: list[type["TritonBasis"]] = []


def register_triton_basis(cls: type["TritonBasis"]) -> type["TritonBasis"]:
    """Class decorator: Triton kernels for the KAN family named ``cls.name``."""
    if cls.name in _TRITON_BASES:
        raise ValueError(f"Triton kernels for {cls.name!r} registered twice")
    _TRITON_BASES[cls.name] = cls
    return cls


def register_recurrence_kernels(cls: type["TritonBasis"]) -> type["TritonBasis"]:
    """Class decorator: the generic kernels of every registered three-term recurrence."""
    _RECURRENCE_KERNELS[:] = [cls]
    return cls


def triton_basis_names() -> list[str]:
    """Families with Triton kernels (importing ``kanseg.kernels.triton_families`` registers them), sorted."""
    return sorted({*_TRITON_BASES, *(recurrence_names() if _RECURRENCE_KERNELS else ())})


def get_triton_basis(family: torch.nn.Module) -> "TritonBasis":
    """The Triton kernels of ``family`` (a ``BasisFamily`` module); ``ValueError`` listing valid names otherwise."""
    if _RECURRENCE_KERNELS and get_recurrence(family.name) is not None:
        return _RECURRENCE_KERNELS[0](family)
    try:
        return _TRITON_BASES[family.name](family)
    except KeyError:
        raise ValueError(f"no Triton kernels for KAN family {family.name!r}; "
                         f"valid: {', '.join(triton_basis_names())}") from None


class TritonBasis:
    """Triton kernels of one family instance (see :mod:`kanseg.kernels.triton_expand` for the kernel contract).

    Attributes:
        fwd, bwd: the family's ``@triton.jit`` basis functions.
        map_id: the input map applied in the kernel (``MAP_*`` of ``triton_expand``).
        torch_input_map: ν is not pointwise (min-max, a norm): torch computes ``family.input_map`` first and the
            kernel gets ``MAP_IDENTITY``.
        constants: ``(K0, K1, K2)`` compile-time hyperparameters.
        npart: partial-gradient slots per program (0: no learnable kernel parameters).
    """

    name = ""
    fwd = bwd = None
    map_id = 0
    torch_input_map = False
    constants = (0, 0.0, 0.0)
    npart = 0

    def __init__(self, family: torch.nn.Module):
        self.family = family

    @property
    def num_basis(self) -> int:
        return self.family.num_basis

    def kernel_params(self, family: torch.nn.Module, like: torch.Tensor) -> torch.Tensor:
        """Flat parameter vector read by the kernels, built from ``family``'s tensors (differentiable)."""
        return torch.zeros(1, device=like.device)

    def reduce(self, part: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`kernel_params` from the per-program partials ``(B, C, blocks, npart)``."""
        raise NotImplementedError(f"{self.name}: no learnable kernel parameters")
