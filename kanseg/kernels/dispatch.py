"""Which path a KAN layer takes: the eager reference, or the fused memory-saving one.

``KANSEG_KERNELS`` (read at every call):

- ``eager``: the reference layers, bit for bit (``KANConv.expand`` + ``nn.ConvNd``).
- ``fused``: always :class:`~kanseg.kernels.expand_conv.ExpandConv`; the expansion runs in Triton kernels on CUDA for
  the families of :func:`triton_family_names`, in torch otherwise (CPU, wavelet, bspline): by the family's analytic
  expander where it has one (rbf, relu, bspline, wavelet: :mod:`kanseg.kernels.analytic_expander`), else by the
  recompute-under-autograd expander.
- ``auto`` (default): like ``fused``, except for CPU tensors when no gradient is recorded (the eager forward does
  the same work) and while ``torch.compile`` traces (it fuses the eager graph itself).

In ``fused`` and ``auto``, a polynomial family on the torch backend also takes the lean layout of
:mod:`kanseg.kan.lean` (its constant map p_0 = 1 folded into a ones-conv: one basis map in P fewer to expand and
convolve), inside ``ExpandConv`` when fused, as plain ops otherwise.

On CUDA, the families of :func:`~kanseg.kernels.stage2_table.stage2_family_names` take the implicit-GEMM conv
(stage 2, backend ``implicit_gemm``) instead of expand + cuDNN where the measured table
(:mod:`kanseg.kernels.stage2_table`) says it is faster.

This module never imports ``kanseg.kan``: the layer passes its family module, convs and dropout in.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.kernels.analytic_expander import AnalyticExpander
from kanseg.kernels.expand_conv import ConvGeometry, ExpandConv, ExpandConvPlan, TorchExpander
from kanseg.kernels.recurrences import recurrence_names
from kanseg.kernels.stage2_table import STAGE2_FAMILIES, LayerShape, choose_stage2, stage2_family_names
from kanseg.kernels.triton_registry import HANDWRITTEN_FAMILIES

ENV_VAR = "KANSEG_KERNELS"
MODES = ("eager", "fused", "auto")
BACKENDS = ("torch", "triton", "implicit_gemm")


def triton_family_names() -> tuple[str, ...]:
    """Families with Triton expansion kernels: the hand-written ones and every registered three-term recurrence."""
    return tuple(sorted({*HANDWRITTEN_FAMILIES, *recurrence_names()}))


#: :func:`triton_family_names` at import (a recurrence registered later is only in the function's answer).
TRITON_FAMILIES = triton_family_names()


def kernel_mode() -> str:
    """The mode set by ``KANSEG_KERNELS`` (``auto`` when unset); ``KansegError`` listing the valid modes otherwise."""
    mode = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if mode not in MODES:
        raise KansegError(f"{ENV_VAR}={mode!r} is not a kernel mode; valid: {', '.join(MODES)}")
    return mode


def use_fused(x: torch.Tensor) -> bool:
    """Whether a layer seeing input ``x`` takes the fused path under the current mode."""
    mode = kernel_mode()
    if mode == "eager":
        return False
    if mode == "fused":
        return True
    if torch.compiler.is_compiling():
        return False
    return x.is_cuda or torch.is_grad_enabled()


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def select_backend(z: torch.Tensor, family_name: str) -> str:
    """``"triton"`` for CUDA tensors of a family with kernels (and triton installed), else ``"torch"``."""
    return "triton" if z.is_cuda and family_name in triton_family_names() and triton_available() else "torch"


# --- stage 2 (implicit GEMM): chosen per layer shape from the measured table --------------------------------------
@functools.lru_cache(maxsize=None)
def _gpu_name(index: int) -> str:
    return torch.cuda.get_device_name(index)


def stage2_chosen(z: torch.Tensor, family_name: str, conv: nn.Module, conv_dtype: torch.dtype) -> bool:
    """Whether the ``triton`` backend should run this layer as an implicit GEMM (stage 2), by the measured table."""
    if not z.is_cuda or family_name not in stage2_family_names():
        return False
    geometry = ConvGeometry.of(conv)
    shape = LayerShape(family_name, z.dim() - 2, str(conv_dtype).removeprefix("torch."), z.shape[1],
                       conv.weight.shape[0], tuple(conv.weight.shape[2:]), geometry.stride, geometry.dilation,
                       geometry.groups, z.numel() // z.shape[1])
    return choose_stage2(shape, _gpu_name(z.device.index or 0))
# --- end stage 2 -----------------------------------------------------------------------------------------------------


def conv_compute_dtype(z: torch.Tensor) -> torch.dtype:
    """The dtype the eager conv would run in: the autocast dtype when autocast is on, else ``z``'s."""
    device = z.device.type
    if z.dtype != torch.float64 and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return z.dtype


def dropout_scale(dropout: nn.Module | None, z: torch.Tensor) -> torch.Tensor | None:
    """Channel-dropout mask as a ``(B, C, 1…)`` scale (0 or 1/(1−p)), or ``None`` when dropout is inactive."""
    if dropout is None or not dropout.training or dropout.p == 0:
        return None
    dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    ones = torch.ones(z.shape[0], z.shape[1], *([1] * (z.dim() - 2)), device=z.device, dtype=dtype)
    return dropout(ones)


def torch_basis_expansion(family: nn.Module, z: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """``B(scale·ν(z))`` by the family's torch code, in fp32 (fp64 for fp64 ``z``): ``(B, C, *S) -> (B, C*P, *S)``."""
    t = family.input_map(z if z.dtype == torch.float64 else z.float())
    if scale is not None:
        t = t * scale
    return family.expand(t)


def _split_basis_conv(conv: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """The conv over the expanded tensor and what follows it (the wavelet family's 1×1 mix)."""
    if isinstance(conv, nn.Sequential):
        return conv[0], (conv[1:] if len(conv) > 1 else None)
    return conv, None


def basis_conv(z: torch.Tensor, family: nn.Module, conv: nn.Module, dropout: nn.Module | None = None, *,
               backend: str | None = None) -> torch.Tensor:
    """The fused basis branch ``conv(B(ν(dropout(z))))``: ``(B, C, *S) -> (B, C_out, *S')``.

    Args:
        z: input of the basis (after the bottleneck's ``inner_proj`` if any).
        family: the layer's ``BasisFamily`` module.
        conv: the layer's basis conv (an ``nn.ConvNd`` without bias, or ``nn.Sequential`` whose first conv runs over
            the expanded tensor and whose rest is applied to its output).
        dropout: the layer's channel dropout module or ``None``.
        backend: ``"torch"``, ``"triton"`` (stage 1) or ``"implicit_gemm"`` (stage 2, families in
            :data:`STAGE2_FAMILIES`); ``None`` picks by device (:func:`select_backend`) and, for ``triton``, by the
            measured stage-2 table (:func:`stage2_chosen`).
    """
    first, rest = _split_basis_conv(conv)
    geometry = ConvGeometry.of(first)
    if geometry is None:
        raise ValueError(f"fused basis conv needs a bias-free, zero-padded nn.ConvNd, got {first!r}")
    auto = backend is None
    backend = select_backend(z, family.name) if auto else backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; valid: {', '.join(BACKENDS)}")
    names = [n for n, _ in family.named_parameters()]
    params = [p for _, p in family.named_parameters()]
    conv_dtype = conv_compute_dtype(z)
    if auto and backend == "triton" and stage2_chosen(z, family.name, first, conv_dtype):
        backend = "implicit_gemm"
    if backend == "implicit_gemm":  # stage 2: the expanded tensor never exists
        from kanseg.kernels.implicit_gemm import ImplicitGemmConv, ImplicitGemmPlan  # imports triton only here
        from kanseg.kernels.triton_expander import TritonExpander
        plan = ImplicitGemmPlan(TritonExpander(family, names, conv_dtype), geometry, conv_dtype)
        y = ImplicitGemmConv.apply(z, first.weight, dropout_scale(dropout, z), plan, *params)
        return rest(y) if rest is not None else y
    if backend == "triton":
        from kanseg.kernels.triton_expander import TritonExpander  # imports triton only here
        expander = TritonExpander(family, names, conv_dtype)
    elif getattr(family, "analytic_vjp", False):
        expander = AnalyticExpander(family, names)
    else:
        expander = TorchExpander(family, torch_basis_expansion, names)
    plan = ExpandConvPlan(expander, geometry, conv_dtype)
    y = ExpandConv.apply(z, first.weight, dropout_scale(dropout, z), plan, *params)
    return rest(y) if rest is not None else y


def _apply_activation(act: nn.Module, x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    return act(x)


def activation_conv(x: torch.Tensor, act: nn.Module, conv: nn.Module) -> torch.Tensor:
    """The base branch ``conv(φ(x))`` recomputing ``φ(x)`` in backward: ``(B, C, *S) -> (B, C_out, *S')``."""
    geometry = ConvGeometry.of(conv)
    if isinstance(act, nn.Identity) or geometry is None:
        return conv(act(x))
    names = [n for n, _ in act.named_parameters()]
    params = [p for _, p in act.named_parameters()]
    plan = ExpandConvPlan(TorchExpander(act, _apply_activation, names), geometry, conv_compute_dtype(x))
    return ExpandConv.apply(x, conv.weight, None, plan, *params)
