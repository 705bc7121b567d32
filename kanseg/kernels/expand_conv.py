"""``conv(E(z))`` as one memory-saving ``torch.autograd.Function``: the expanded tensor is never saved.

``E`` is an *expander*: the basis expansion of a KAN family (``B(ν(z))``, ``(B, C, *S) -> (B, C*P, *S)``), or a
pointwise activation (the base branch ``φ(x)``). Forward computes ``E(z)``, convolves it and drops it; backward
recomputes ``E(z)``, calls the convolution's weight- and input-gradient functions, then pulls the gradient back
through ``E``. Saved for backward: ``z``, the conv weight, the dropout scale and the expander's parameters.

Two expanders share the same Function: :class:`TorchExpander` (any family, any device: the recompute runs the
family's own torch code under autograd) and ``TritonExpander`` (``kanseg.kernels.triton_expander``: fused kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from kanseg.kernels.conv_backward import conv_backward, use_forward_route


@dataclass(frozen=True)
class ConvGeometry:
    """Stride, zero padding, dilation and groups of an N-d convolution (tuples of length N)."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    @classmethod
    def of(cls, conv: nn.Module) -> "ConvGeometry | None":
        """The geometry of an ``nn.ConvNd`` without bias and with zero padding; ``None`` if it is anything else."""
        if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed or conv.bias is not None:
            return None
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            return None
        return cls(tuple(conv.stride), tuple(conv.padding), tuple(conv.dilation), conv.groups)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S) -> (B, C_out, *S')``."""
        zeros = [0] * len(self.stride)
        return torch.ops.aten.convolution(x, weight, None, list(self.stride), list(self.padding),
                                          list(self.dilation), False, zeros, self.groups)

    def backward(self, grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_input: bool,
                 need_weight: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(dL/dx, dL/dweight)`` of :meth:`forward` (``None`` where not asked for)."""
        if use_forward_route(x, weight, self.stride, self.groups, recording=True):
            grad_x, grad_w, _ = conv_backward(grad_y, x, weight, self.stride, self.padding, self.dilation,
                                              self.groups, need_input, need_weight)
            return grad_x, grad_w
        zeros = [0] * len(self.stride)
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_y, x, weight, None, list(self.stride), list(self.padding), list(self.dilation), False, zeros,
            self.groups, [need_input, need_weight, False])
        return grad_x, grad_w


class _Call(nn.Module):
    """Runs ``fn(module, *args)`` so that ``torch.func.functional_call`` can swap the module's tensors."""

    def __init__(self, module: nn.Module, fn):
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *args):
        return self.fn(self.module, *args)


def call_with(module: nn.Module, fn, names: list[str], params: list[torch.Tensor], *args):
    """``fn(module, *args)`` with ``module``'s parameters ``names`` replaced by ``params`` and every buffer replaced
    by a copy, so a recompute never updates running statistics a second time."""
    swap = {f"module.{n}": p for n, p in zip(names, params)}
    swap.update({f"module.{n}": b.clone() for n, b in module.named_buffers()})
    return torch.func.functional_call(_Call(module, fn), swap, args, strict=False)


class TorchExpander:
    """Expansion by the module's own torch code: ``fn(module, z, scale) -> expanded``.

    ``names`` are the module parameters passed to :class:`ExpandConv` (in that order). Works for every family and
    device; the recompute in backward builds a short-lived autograd graph and differentiates through it.
    """

    def __init__(self, module: nn.Module, fn, names: list[str]):
        self.module, self.fn, self.names = module, fn, names

    def forward(self, z, scale, params):
        return self.fn(self.module, z, scale)

    def recompute(self, z, scale, params, need_z: bool, need_params: list[bool]):
        z_ = z.detach().requires_grad_(need_z)
        ps = [p.detach().requires_grad_(need) for p, need in zip(params, need_params)]
        with torch.enable_grad():
            expanded = call_with(self.module, self.fn, self.names, ps, z_, scale)
        return expanded, (expanded, z_, ps)

    def vjp(self, handle, grad_expanded, need_z: bool, need_params: list[bool]):
        expanded, z_, ps = handle
        inputs = ([z_] if need_z else []) + [p for p, need in zip(ps, need_params) if need]
        if expanded.requires_grad:
            grads = list(torch.autograd.grad(expanded, inputs, grad_expanded.to(expanded.dtype), allow_unused=True))
        else:  # the expansion uses none of them (e.g. Gram degree 1 has no beta term; the input needs no grad)
            grads = [None] * len(inputs)
        grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
        grad_z = grads.pop(0) if need_z else None
        return grad_z, [grads.pop(0) if need else None for need in need_params]


@dataclass(frozen=True)
class ExpandConvPlan:
    """What :class:`ExpandConv` needs besides tensors: the expander, the conv geometry, the conv's compute dtype."""

    expander: object
    geometry: ConvGeometry
    conv_dtype: torch.dtype


class ExpandConv(torch.autograd.Function):
    """``y = conv(E(z), weight)`` saving only ``z``, ``weight``, ``scale`` and ``params``.

    Args (of ``apply``): ``z (B, C, *S)``; ``weight (C_out, C*P/groups, k…)``; ``scale``: dropout scale
    ``(B, C, 1…)`` or ``None``; ``plan``: :class:`ExpandConvPlan`; ``*params``: the expander's parameters.
    Returns ``(B, C_out, *S')`` in ``plan.conv_dtype``. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, z, weight, scale, plan, *params):
        with torch.autocast(z.device.type, enabled=False), torch.no_grad():
            expanded = plan.expander.forward(z, scale, params)
            y = plan.geometry.forward(expanded.to(plan.conv_dtype), weight.to(plan.conv_dtype))
        ctx.plan = plan
        ctx.save_for_backward(z, weight, scale, *params)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        z, weight, scale, *params = ctx.saved_tensors
        plan = ctx.plan
        need_z, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_params = list(ctx.needs_input_grad[4:])
        need_expanded = need_z or any(need_params)
        with torch.autocast(z.device.type, enabled=False):
            expanded, handle = plan.expander.recompute(z, scale, params, need_z, need_params)
            w = weight.to(plan.conv_dtype)
            grad_e, grad_w = plan.geometry.backward(grad_y.to(plan.conv_dtype), expanded.to(plan.conv_dtype), w,
                                                    need_expanded, need_w)
            del expanded
            grad_z, grad_params = None, [None] * len(params)
            if need_expanded:
                grad_z, grad_params = plan.expander.vjp(handle, grad_e, need_z, need_params)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        if grad_z is not None:
            grad_z = grad_z.to(z.dtype)
        return (grad_z, grad_w, None, None, *grad_params)
