"""The two generic Triton expansion kernels and their launchers; the family math is plugged in as jit functions.

Flat view: the input ``(B, C, *S)`` is ``R = B·C`` rows of ``S`` elements; the expanded tensor ``(B, C·P, *S)`` in
kanseg's channel-major layout is ``R·P`` rows, row ``r·P + n`` holding basis function ``n`` of input row ``r``.
Program ``(r, j)`` handles row ``r``, elements ``j·BLOCK …``: it loads ``x`` once, applies the input map ν
(``MAP``: 0 identity, 1 tanh, 2 tanh clamped to ±(1−1e−7), 3 sigmoid), the dropout scale, then calls the family's

- ``fwd(t, dst, S, mask, prm, c, C, P, K0, K1, K2)``: stores the P rows ``dst + n·S``;
- ``bwd(t, src, S, mask, prm, c, C, part, P, K0, K1, K2) -> dL/dt``: reads the P gradient rows ``src + n·S`` and
  writes this program's partial sums of the learnable parameters' gradients to ``part[0:NPART]``.

Partial sums (one slot per program, no atomics) are merged by the family's ``reduce`` in torch: deterministic.
Basis math runs in fp32 (fp64 for fp64 inputs); results are stored in the output tensor's dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanseg.kernels.recurrences import CLAMP_EPS

MAP_IDENTITY, MAP_TANH, MAP_CLAMPED_TANH, MAP_SIGMOID = 0, 1, 2, 3
#: input-map names of :mod:`kanseg.kernels.recurrences` -> ``MAP`` ids (``minmax`` runs in torch: identity here).
MAP_IDS = {"identity": MAP_IDENTITY, "tanh": MAP_TANH, "clamped-tanh": MAP_CLAMPED_TANH, "sigmoid": MAP_SIGMOID,
           "minmax": MAP_IDENTITY}
_LOW: tl.constexpr = tl.constexpr(-1.0 + CLAMP_EPS)
_HIGH: tl.constexpr = tl.constexpr(1.0 - CLAMP_EPS)


@triton.jit
def tanh(x):
    """tanh via exp (libdevice tanh is unavailable in the interpreter); exact limits ±1 for large |x|."""
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


# zeros_like / block_sum stand in for tl.zeros / tl.sum: those are @jit functions of triton.language, which the
# interpreter cannot call when triton was imported before TRITON_INTERPRET was set (torch._dynamo imports triton).
@triton.jit
def zeros_like(x):
    return tl.full(x.shape, 0.0, x.dtype)


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def block_sum(x):
    """Sum of a 1-D block (a fixed reduction tree: deterministic)."""
    return tl.reduce(x, 0, _add)


@triton.jit
def store_row(dst, n, S, value, mask):
    """Store basis function ``n`` of a block into row ``n`` of the block's output rows."""
    tl.store(dst + n * S, value.to(dst.dtype.element_ty), mask=mask)


@triton.jit
def load_row(src, n, S, mask, like):
    return tl.load(src + n * S, mask=mask, other=0.0).to(like.dtype)


@triton.jit
def _input_map(x, MAP: tl.constexpr):
    if MAP == 1:
        t = tanh(x)
    elif MAP == 2:
        t = tl.minimum(tl.maximum(tanh(x), _LOW), _HIGH)
    elif MAP == 3:
        t = sigmoid(x)
    else:
        t = x
    return t


@triton.jit
def _input_map_grad(x, MAP: tl.constexpr):
    """dν/dx (for the clamp: 0 outside the bounds, like torch.clamp's gradient)."""
    if MAP == 1:
        t = tanh(x)
        d = 1.0 - t * t
    elif MAP == 2:
        t = tanh(x)
        inside = (t >= _LOW) & (t <= _HIGH)
        d = tl.where(inside, 1.0 - t * t, 0.0)
    elif MAP == 3:
        t = sigmoid(x)
        d = t * (1.0 - t)
    else:
        d = tl.full(x.shape, 1.0, x.dtype)
    return d


@triton.jit
def _load_input(x_ptr, scale_ptr, S, HAS_SCALE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < S
    x = tl.load(x_ptr + r * S + offs, mask=mask, other=0.0)
    if F64:
        x = x.to(tl.float64)
    else:
        x = x.to(tl.float32)
    s = 1.0
    if HAS_SCALE:
        s = tl.load(scale_ptr + r).to(x.dtype)
    return r, offs, mask, x, s


@triton.jit
def expand_fwd_kernel(x_ptr, out_ptr, scale_ptr, prm_ptr, C, S, FWD: tl.constexpr, MAP: tl.constexpr,
                      P: tl.constexpr, K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr,
                      HAS_SCALE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    r, offs, mask, x, s = _load_input(x_ptr, scale_ptr, S, HAS_SCALE, F64, BLOCK)
    t = _input_map(x, MAP) * s
    FWD(t, out_ptr + r * P * S + offs, S, mask, prm_ptr, r % C, C, P, K0, K1, K2)


@triton.jit
def expand_bwd_kernel(x_ptr, g_ptr, gx_ptr, scale_ptr, prm_ptr, part_ptr, C, S, BWD: tl.constexpr,
                      MAP: tl.constexpr, P: tl.constexpr, NPART: tl.constexpr, K0: tl.constexpr, K1: tl.constexpr,
                      K2: tl.constexpr, HAS_SCALE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    r, offs, mask, x, s = _load_input(x_ptr, scale_ptr, S, HAS_SCALE, F64, BLOCK)
    t = _input_map(x, MAP) * s
    program = r * tl.num_programs(1) + tl.program_id(1)
    grad_t = BWD(t, g_ptr + r * P * S + offs, S, mask, prm_ptr, r % C, C, part_ptr + program * NPART, P, K0, K1, K2)
    grad_x = grad_t * s * _input_map_grad(x, MAP)
    tl.store(gx_ptr + r * S + offs, grad_x.to(gx_ptr.dtype.element_ty), mask=mask)


def _block(S: int) -> int:
    return max(16, min(1024, triton.next_power_of_2(S)))


def _rows(x: torch.Tensor) -> tuple[int, int, int]:
    """``(B·C, C, S)`` of a ``(B, C, *S)`` tensor."""
    return x.shape[0] * x.shape[1], x.shape[1], x[0, 0].numel()


def launch_forward(spec, x: torch.Tensor, scale: torch.Tensor | None, prm: torch.Tensor, P: int,
                   out_dtype: torch.dtype) -> torch.Tensor:
    """Expanded tensor ``(B, C·P, *S)`` in ``out_dtype`` from ``x (B, C, *S)`` (any float dtype, any strides)."""
    x = x.contiguous()
    R, C, S = _rows(x)
    out = torch.empty(x.shape[0], C * P, *x.shape[2:], device=x.device, dtype=out_dtype)
    if out.numel() == 0:
        return out
    block = _block(S)
    grid = (R, triton.cdiv(S, block))
    k0, k1, k2 = spec.constants
    expand_fwd_kernel[grid](x, out, scale if scale is not None else prm, prm, C, S, FWD=spec.fwd, MAP=spec.map_id,
                            P=P, K0=k0, K1=k1, K2=k2, HAS_SCALE=scale is not None,
                            F64=x.dtype == torch.float64, BLOCK=block)
    return out


def launch_backward(spec, x: torch.Tensor, scale: torch.Tensor | None, prm: torch.Tensor, P: int,
                    grad_expanded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dL/dx, partials)``: ``dL/dx`` like ``x``; partials ``(B, C, blocks, NPART)`` for ``spec.reduce``."""
    x = x.contiguous()
    grad_expanded = grad_expanded.contiguous()
    R, C, S = _rows(x)
    block = _block(S)
    blocks = triton.cdiv(S, block)
    f64 = x.dtype == torch.float64
    grad_x = torch.empty_like(x)
    part = torch.zeros(x.shape[0], C, blocks, max(spec.npart, 1), device=x.device,
                       dtype=torch.float64 if f64 else torch.float32)
    if x.numel() == 0:
        return grad_x, part
    k0, k1, k2 = spec.constants
    expand_bwd_kernel[(R, blocks)](x, grad_expanded, grad_x, scale if scale is not None else prm, prm, part, C, S,
                                   BWD=spec.bwd, MAP=spec.map_id, P=P, NPART=max(spec.npart, 1), K0=k0, K1=k1,
                                   K2=k2, HAS_SCALE=scale is not None, F64=f64, BLOCK=block)
    return grad_x, part
