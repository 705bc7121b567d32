"""Stage 2 of the fused KAN kernels: ``conv(B(ν(z)))`` as one implicit-GEMM autograd Function (1D/2D/3D).

Unlike stage 1 (:class:`~kanseg.kernels.expand_conv.ExpandConv`: expand into a temporary ``(B, C·P, *S)`` tensor,
then cuDNN), the expanded tensor never exists: the kernels of :mod:`kanseg.kernels.implicit_gemm_kernels` evaluate
the basis while loading GEMM operands, in forward and in both backward GEMMs. Saved for backward: ``z``, the weight,
the dropout scale and the family's parameters (as stage 1). Families:
:func:`~kanseg.kernels.stage2_table.stage2_family_names`.

    >>> y = kanseg.kernels.basis_conv(z, layer.basis, layer.basis_conv, backend="implicit_gemm")
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from torch.autograd.function import once_differentiable

from kanseg.kernels.expand_conv import ConvGeometry
from kanseg.kernels.implicit_gemm_basis import stage2_functions
from kanseg.kernels.implicit_gemm_kernels import kan_conv_dw_kernel, kan_conv_dx_kernel, kan_conv_fwd_kernel
from kanseg.kernels.triton_expander import TritonExpander


def _volume(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *S)`` with 1–3 spatial dims as a contiguous ``(B, C, D, H, W)`` view."""
    x = x.contiguous()
    return x.reshape(*x.shape[:2], *[1] * (5 - x.dim()), *x.shape[2:])


def _pad3(values: tuple[int, ...], fill: int) -> tuple[int, int, int]:
    return (fill,) * (3 - len(values)) + tuple(values)


def _pow2(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, triton.next_power_of_2(max(n, 1))))


@dataclass(frozen=True)
class VolumeConv:
    """A conv's geometry on ``(B, C, D, H, W)`` volumes: the kernels' compile-time arguments and the sizes."""

    kernel: tuple[int, int, int]
    geometry: ConvGeometry

    @property
    def constants(self) -> dict:
        nd = len(self.geometry.stride)
        (kd, kh, kw), (sd, sh, sw) = self.kernel, _pad3(self.geometry.stride, 1)
        (pd, ph, pw), (ld, lh, lw) = _pad3(self.geometry.padding, 0), _pad3(self.geometry.dilation, 1)
        assert nd <= 3
        return dict(KD=kd, KH=kh, KW=kw, SD=sd, SH=sh, SW=sw, PD=pd, PH=ph, PW=pw, LD=ld, LH=lh, LW=lw)

    def out_size(self, size: tuple[int, int, int]) -> tuple[int, int, int]:
        c = self.constants
        return tuple((s + 2 * c[f"P{a}"] - c[f"L{a}"] * (c[f"K{a}"] - 1) - 1) // c[f"S{a}"] + 1
                     for s, a in zip(size, "DHW"))


#: φ of a fused base branch -> the kernels' ``ACT`` id.
BASE_ACTIVATIONS = {"identity": 0, "silu": 1}


@dataclass(frozen=True)
class ImplicitGemmPlan:
    """What :class:`ImplicitGemmConv` needs besides tensors.

    ``expander`` (stage 1's :class:`TritonExpander`) supplies the kernel inputs ``(t, prm)``, their recompute under
    autograd and the chain rule back to ``z`` and the family's parameters. ``base_act``: ``None``, or the fused base
    branch's φ (a key of :data:`BASE_ACTIVATIONS`); then the weight holds ``P + 1`` functions per channel, the last
    one the base conv's (:mod:`kanseg.kernels.implicit_gemm_fused`).
    """

    expander: TritonExpander
    geometry: ConvGeometry
    conv_dtype: torch.dtype
    base_act: str | None = None

    @property
    def functions(self) -> int:
        """Weight columns per input channel: the basis functions, plus one for a fused base branch."""
        return self.spec.num_basis + (self.base_act is not None)

    @property
    def spec(self):
        return self.expander.kernels

    def volume_conv(self, weight: torch.Tensor) -> VolumeConv:
        return VolumeConv(_pad3(tuple(weight.shape[2:]), 1), self.geometry)

    def precision(self, t: torch.Tensor) -> str:
        """``tf32`` for fp32 on CUDA when cuDNN may use it too (torch's default for convs), else ``ieee``."""
        tf32 = self.conv_dtype == torch.float32 and t.is_cuda and torch.backends.cudnn.allow_tf32
        return "tf32" if tf32 else "ieee"


def _column_block(Cg: int, pp: int, gpu: bool) -> int:
    """Channels per program of the backward kernels, whose dot operand has ``channels · PP`` columns (16 … 128 on
    a GPU, up to 256 in the interpreter where fewer, larger programs are faster)."""
    return _pow2(Cg, max(1, 16 // pp), max(1, (128 if gpu else 256) // pp))


def _weight_split(weight: torch.Tensor, groups: int, P: int) -> torch.Tensor:
    """``(C_out, Cg·P, *k) -> (G, Og, Cg, P, KV)`` view."""
    c_out, cgp = weight.shape[:2]
    return weight.reshape(groups, c_out // groups, cgp // P, P, -1)


def _forward_tiles(weight: torch.Tensor, groups: int, P: int, dtype: torch.dtype) -> torch.Tensor:
    """The forward kernel's weight: ``(G, KV, P, Cg, Og)`` contiguous in ``dtype``."""
    return _weight_split(weight.to(dtype), groups, P).permute(0, 4, 3, 2, 1).contiguous()


def _input_grad_tiles(weight: torch.Tensor, groups: int, P: int, PP: int, dtype: torch.dtype) -> torch.Tensor:
    """The input-gradient kernel's weight: ``(G, KV, Og, Cg, PP)`` contiguous in ``dtype``, zero for n >= P."""
    split = _weight_split(weight.to(dtype), groups, P).permute(0, 4, 1, 2, 3)
    return torch.nn.functional.pad(split, (0, PP - P)).contiguous()


def _weight_from_grad_tiles(tiles: torch.Tensor, like: torch.Tensor, P: int) -> torch.Tensor:
    """``(G, KV, Cg, PP, Og)`` (the weight-gradient kernel's output) back to ``like``'s shape and dtype."""
    return tiles[:, :, :, :P].permute(0, 4, 2, 3, 1).reshape(like.shape).to(like.dtype)


def _common(plan: ImplicitGemmPlan, t: torch.Tensor, weight: torch.Tensor, scale, prm) -> tuple[dict, list]:
    """Compile-time arguments and the leading runtime arguments shared by the three kernels."""
    vc = plan.volume_conv(weight)
    x = _volume(t)
    B, C, D, H, W = x.shape
    Do, Ho, Wo = vc.out_size((D, H, W))
    groups, P = plan.geometry.groups, plan.spec.num_basis
    flat_scale = prm if scale is None else scale.reshape(-1).to(torch.float64 if t.dtype == torch.float64
                                                                 else torch.float32).contiguous()
    consts = dict(MAP=plan.spec.map_id, P=P, K0=plan.spec.constants[0], HAS_SCALE=scale is not None,
                  F64=t.dtype == torch.float64, PRECISION=plan.precision(t), BASE=int(plan.base_act is not None),
                  ACT=BASE_ACTIVATIONS[plan.base_act or "identity"], **vc.constants)
    sizes = [B, C, D, H, W, Do, Ho, Wo, C // groups, weight.shape[0] // groups]
    return consts, [x, flat_scale, sizes, (Do, Ho, Wo)]


def conv_forward(plan: ImplicitGemmPlan, t: torch.Tensor, weight: torch.Tensor, scale, prm) -> torch.Tensor:
    """``(B, C, *S) -> (B, C_out, *S')`` in ``plan.conv_dtype``: the basis conv of the kernel input ``t``."""
    consts, (x, flat_scale, sizes, out_size) = _common(plan, t, weight, scale, prm)
    B, C, *_, Cg, Og = sizes
    groups = plan.geometry.groups
    y = torch.empty(B, groups * Og, *out_size, device=t.device, dtype=plan.conv_dtype)
    out_shape = (B, groups * Og, *out_size[3 - (t.dim() - 2):])
    if y.numel() == 0 or x.numel() == 0:
        return y.zero_().reshape(out_shape)
    w = _forward_tiles(weight, groups, plan.functions, plan.conv_dtype)
    gpu = t.is_cuda
    bm, bn, bc = (64 if gpu else _pow2(y[:, 0].numel(), 16, 256)), _pow2(Og, 16, 128), _pow2(Cg, 16, 32)
    grid = (triton.cdiv(y[:, 0].numel(), bm), groups * triton.cdiv(Og, bn))
    value, _ = stage2_functions(plan.spec)
    kan_conv_fwd_kernel[grid](x, w, y, flat_scale, prm, *sizes, VALUE=value, BM=bm, BN=bn, BC=bc, **consts)
    return y.reshape(out_shape)


def conv_input_grad(plan: ImplicitGemmPlan, t: torch.Tensor, weight: torch.Tensor, scale, prm,
                    grad_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dL/dt like t, partials (1, 1, programs, npart))`` for the family's ``reduce``."""
    consts, (x, flat_scale, sizes, _) = _common(plan, t, weight, scale, prm)
    B, C, *_, Cg, Og = sizes
    groups, npart = plan.geometry.groups, plan.spec.npart
    grad_x = torch.empty_like(x)
    gpu = t.is_cuda
    pp = triton.next_power_of_2(plan.functions)
    bm, bc, bo = (64 if gpu else _pow2(x[:, 0].numel(), 16, 256)), _column_block(Cg, pp, gpu), _pow2(Og, 16, 64)
    grid = (triton.cdiv(x[:, 0].numel(), bm), groups * triton.cdiv(Cg, bc))
    part = torch.zeros(1, 1, grid[0] * grid[1], max(npart, 1), device=t.device,
                       dtype=torch.float64 if consts["F64"] else torch.float32)
    if x.numel() == 0:
        return grad_x.reshape(t.shape), part
    w = _input_grad_tiles(weight, groups, plan.functions, pp, plan.conv_dtype)
    _, adjoint = stage2_functions(plan.spec)
    kan_conv_dx_kernel[grid](x, w, _volume(grad_y.to(plan.conv_dtype)), grad_x, flat_scale, prm, part, *sizes,
                             ADJOINT=adjoint, PP=pp, NPART=npart, BM=bm, BC=bc, BO=bo, **consts)
    return grad_x.reshape(t.shape), part


def _split_k(programs: int, steps: int, device: torch.device) -> int:
    """Slices of the weight gradient's reduction over output voxels: enough programs to fill the GPU (4 per SM)."""
    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(steps, triton.cdiv(4 * sms, programs)))


def conv_weight_grad(plan: ImplicitGemmPlan, t: torch.Tensor, weight: torch.Tensor, scale, prm,
                     grad_y: torch.Tensor, split: int | None = None) -> torch.Tensor:
    """``dL/dweight`` like ``weight`` (reduced in fp32, fp64 for fp64 ``t``; ``split`` split-K slices, by default
    enough to fill the GPU, summed in torch: deterministic)."""
    consts, (x, flat_scale, sizes, _) = _common(plan, t, weight, scale, prm)
    B, C, *_, Cg, Og = sizes
    groups, P = plan.geometry.groups, plan.functions
    kv, pp = weight[0, 0].numel(), triton.next_power_of_2(P)
    gy = _volume(grad_y.to(plan.conv_dtype))
    acc_dtype = torch.float64 if consts["F64"] else torch.float32
    if gy.numel() == 0 or x.numel() == 0:
        return _weight_from_grad_tiles(torch.zeros(groups, kv, Cg, pp, Og, device=t.device, dtype=acc_dtype),
                                       weight, P)
    gpu = t.is_cuda
    voxels = gy[:, 0].numel()
    bo, bc = _pow2(Og, 16, 64), _column_block(Cg, pp, gpu)
    bk = 64 if gpu else _pow2(triton.cdiv(voxels, split or 1), 16, 512)
    grid = (groups * triton.cdiv(Og, bo), triton.cdiv(Cg, bc), kv)
    split = split or _split_k(grid[0] * grid[1] * grid[2], triton.cdiv(voxels, bk), t.device)
    chunk = triton.cdiv(triton.cdiv(voxels, bk), split) * bk
    tiles = torch.zeros(split, groups, kv, Cg, pp, Og, device=t.device, dtype=acc_dtype)
    value, _ = stage2_functions(plan.spec)
    kan_conv_dw_kernel[grid[:2] + (kv * split,)](x, gy, tiles, flat_scale, prm, *sizes, chunk, split, VALUE=value,
                                                  PP=pp, BO=bo, BC=bc, BK=bk, **consts)
    return _weight_from_grad_tiles(tiles.sum(0), weight, P)


class ImplicitGemmConv(torch.autograd.Function):
    """``y = conv(B(ν(z)), weight)`` by implicit GEMM, saving only ``z``, ``weight``, ``scale`` and ``params``.

    Args (of ``apply``), as :class:`~kanseg.kernels.expand_conv.ExpandConv`: ``z (B, C, *S)``;
    ``weight (C_out, C·P/groups, k…)``; ``scale``: dropout scale ``(B, C, 1…)`` or ``None``; ``plan``:
    :class:`ImplicitGemmPlan`; ``*params``: the family's parameters. Returns ``(B, C_out, *S')`` in
    ``plan.conv_dtype``. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, z, weight, scale, plan, *params):
        with torch.autocast(z.device.type, enabled=False), torch.no_grad():
            t, prm = plan.expander.kernel_inputs(plan.expander.family, z, scale)
            y = conv_forward(plan, t, weight, scale, prm.contiguous())
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
        grad_z, grad_w, grad_params = None, None, [None] * len(params)
        with torch.autocast(z.device.type, enabled=False):
            t, prm, handle = plan.expander.prepare(z, scale, params, need_z, need_params)
            if need_w:
                grad_w = conv_weight_grad(plan, t, weight, scale, prm, grad_y)
            if need_z or any(need_params):
                grad_t, part = conv_input_grad(plan, t, weight, scale, prm, grad_y)
                grad_z, grad_params = plan.expander.chain(handle, grad_t, part, need_z, need_params)
        if grad_z is not None:
            grad_z = grad_z.to(z.dtype)
        return (grad_z, grad_w, None, None, *grad_params)

