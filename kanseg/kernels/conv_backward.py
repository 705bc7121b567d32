"""Convolution gradients from forward kernels, for CPUs where torch's own conv backward is slow.

For ``y = conv(x, w)`` (N-d, stride ``s``, zero padding ``p``, dilation ``d``, groups ``g``):

- ``dL/dx = conv_transpose(dL/dy, w)`` with the same ``s, p, d, g`` and the output padding that restores ``x``'s size;
- ``dL/dw``: a convolution of ``x`` by ``dL/dy`` with the batch and channel axes swapped, stride ``d``, dilation
  ``s``, padding ``p``, cropped to the kernel size (groups become groups of the swapped convolution);
- ``dL/db = sum of dL/dy`` over batch and space.

Measured on a 2-core CPU, torch 2.14 (``benchmarks/conv_backward.py``), the forward-kernel route is several times
faster than ``aten.convolution_backward`` for small-channel 3D convolutions and degrades far less when another
process shares the cores; at wide layers they tie. Which route a layer takes is :func:`use_forward_route`:
``KANSEG_CONV_BACKWARD=torch|forward|auto`` (default ``auto``: the measured table ``conv_backward_table.json``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from kanseg.errors import KansegError
from kanseg.kernels.stage2_table import load_table  # the same JSON-table reader (cached, absent = empty)

ENV_VAR = "KANSEG_CONV_BACKWARD"
ROUTES = ("torch", "forward", "auto")
TABLE_PATH = Path(__file__).with_name("conv_backward_table.json")
#: the forward route is taken only where the nearest measured row was at least this much faster.
MIN_SPEEDUP = 1.1
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def input_grad(grad_y: torch.Tensor, weight: torch.Tensor, input_shape: tuple[int, ...], stride, padding,
               dilation, groups: int) -> torch.Tensor:
    """``dL/dx (B, C_in, *S)`` from ``dL/dy (B, C_out, *S')`` and ``weight (C_out, C_in/g, *k)``."""
    n = grad_y.dim() - 2
    k = weight.shape[2:]
    out_pad = [input_shape[2 + i] - ((grad_y.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                     + dilation[i] * (k[i] - 1) + 1) for i in range(n)]
    return _CONV_T[n](grad_y, weight, None, stride, padding, out_pad, groups, dilation)


def weight_grad(grad_y: torch.Tensor, x: torch.Tensor, kernel_size: tuple[int, ...], stride, padding, dilation,
                groups: int) -> torch.Tensor:
    """``dL/dw (C_out, C_in/g, *k)``: ``x (B, C_in, *S)`` convolved by ``dL/dy (B, C_out, *S')`` over the batch."""
    n = x.dim() - 2
    b, c_in = x.shape[:2]
    c_out = grad_y.shape[1]
    cin_g, cout_g = c_in // groups, c_out // groups
    # x as (C_in/g, g*B, *S): "batch" = input channel of a group, "channels" = (group, sample)
    xs = x.reshape(b, groups, cin_g, *x.shape[2:]).permute(2, 1, 0, *range(3, 3 + n))
    xs = xs.reshape(cin_g, groups * b, *x.shape[2:])
    # dL/dy as weights (g*C_out/g, B, *S'): output channel, per group, over the samples
    gs = grad_y.reshape(b, groups, cout_g, *grad_y.shape[2:]).permute(1, 2, 0, *range(3, 3 + n))
    gs = gs.reshape(c_out, b, *grad_y.shape[2:])
    full = _CONV[n](xs, gs, None, dilation, padding, stride, groups)  # (C_in/g, C_out, *k')
    full = full[(slice(None), slice(None), *(slice(0, kk) for kk in kernel_size))]
    return full.transpose(0, 1).contiguous()


def conv_backward(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation,
                  groups: int, need_input: bool, need_weight: bool, need_bias: bool = False):
    """``(dL/dx, dL/dw, dL/db)`` of ``conv(x, weight)`` by forward kernels (``None`` where not asked for)."""
    stride, padding, dilation = (tuple(int(v) for v in t) for t in (stride, padding, dilation))
    gx = input_grad(grad_y, weight, tuple(x.shape), stride, padding, dilation, groups) if need_input else None
    gw = weight_grad(grad_y, x, tuple(weight.shape[2:]), stride, padding, dilation, groups) if need_weight else None
    gb = grad_y.sum(dim=[0, *range(2, grad_y.dim())]) if need_bias else None
    return gx, gw, gb


class ForwardKernelConv(torch.autograd.Function):
    """``F.conv{N}d`` forward, :func:`conv_backward` backward. Args: ``x, weight, bias, stride, padding,
    dilation, groups`` (tuples of length N for the geometry). Not twice differentiable."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.geometry = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        return _CONV[x.dim() - 2](x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        need = ctx.needs_input_grad
        gx, gw, gb = conv_backward(grad_y.contiguous(), x, weight, stride, padding, dilation, groups,
                                   need[0], need[1], ctx.has_bias and need[2])
        return gx, gw, gb, None, None, None, None


# --- which route -------------------------------------------------------------------------------------------------
def route_mode() -> str:
    """``KANSEG_CONV_BACKWARD`` (``auto`` when unset); ``KansegError`` listing the valid values otherwise."""
    mode = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if mode not in ROUTES:
        raise KansegError(f"{ENV_VAR}={mode!r} is not a conv backward route; valid: {', '.join(ROUTES)}")
    return mode


@dataclass(frozen=True)
class ConvShape:
    """What the choice depends on (``voxels`` = batch × input voxels)."""

    spatial_dims: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    groups: int
    voxels: int


def choose_forward(shape: ConvShape, table: dict | None = None) -> bool:
    """Whether the nearest measured row (same dims, kernel, stride and groups; nearest channels and size on a log
    scale) had the forward route at least :data:`MIN_SPEEDUP` faster. No row: torch's backward."""
    table = load_table(TABLE_PATH) if table is None else table
    rows = [r for r in table.get("entries", []) if r["spatial_dims"] == shape.spatial_dims
            and tuple(r["kernel_size"]) == shape.kernel_size and tuple(r["stride"]) == shape.stride
            and r["groups"] == shape.groups]
    if not rows:
        return False

    def distance(r):
        return (abs(math.log(r["in_channels"] / shape.in_channels)) + abs(math.log(r["out_channels"] / shape.out_channels))
                + 0.5 * abs(math.log(r["voxels"] / max(shape.voxels, 1))))

    return min(rows, key=distance)["speedup"] >= MIN_SPEEDUP


def use_forward_route(x: torch.Tensor, weight: torch.Tensor, stride, groups: int,
                      recording: bool | None = None) -> bool:
    """The route for a conv with input ``x`` and ``weight``: only CPU convs whose gradients are needed take it.

    ``recording``: whether gradients will be computed (default: autograd records ``x`` or ``weight``); a backward
    that computes conv gradients by hand (``ExpandConv``) passes ``True``.
    """
    mode = route_mode()
    if recording is None:
        recording = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if mode == "torch" or x.device.type != "cpu" or not recording:
        return False
    if torch.compiler.is_compiling():
        return False
    if mode == "forward":
        return True
    shape = ConvShape(x.dim() - 2, int(x.shape[1]), int(weight.shape[0]), tuple(int(k) for k in weight.shape[2:]),
                      tuple(int(s) for s in stride), int(groups), int(x.shape[0] * math.prod(x.shape[2:])))
    return choose_forward(shape)


def routed_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation,
                groups: int) -> torch.Tensor:
    """``F.conv{N}d`` (zero padding given as ints per axis) whose backward takes the chosen route."""
    conv = _CONV[x.dim() - 2]
    if not use_forward_route(x, weight, stride, groups):
        return conv(x, weight, bias, stride, padding, dilation, groups)
    if torch.is_autocast_enabled(x.device.type):  # the Function sees tensors already in the autocast dtype
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    return ForwardKernelConv.apply(x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)


class _RoutedConvMixin:
    """``nn.ConvNd`` whose backward may take the forward-kernel route; same parameters, state dict and forward."""

    def _conv_forward(self, input, weight, bias):  # noqa: A002 (torch's signature)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return routed_conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class RoutedConv1d(_RoutedConvMixin, nn.Conv1d):
    pass


class RoutedConv2d(_RoutedConvMixin, nn.Conv2d):
    pass


class RoutedConv3d(_RoutedConvMixin, nn.Conv3d):
    pass


ROUTED_CONV = {1: RoutedConv1d, 2: RoutedConv2d, 3: RoutedConv3d}
