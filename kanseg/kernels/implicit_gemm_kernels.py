"""Implicit-GEMM KAN convolution kernels (stage 2): the basis is evaluated in the operand loader, never stored.

One implementation for 1D/2D/3D: tensors are seen as 3-D volumes ``(B, C, D, H, W)`` (2D: D = 1, 1D: D = H = 1) and
the geometry (kernel ``K*``, stride ``S*``, padding ``P*``, dilation ``L*`` per axis) is compile-time. Groups: the
input channels of group ``g`` are ``g·Cg …``, its output channels ``g·Og …``. The weight is passed re-laid-out as
``(G, KV, P, Cg, Og)`` (``KV`` kernel positions, ``P`` basis functions) in the dot dtype.

- forward ``y[m, o] = Σ_{kpos, c, n} B_n(t[m ⊕ kpos, c]) · w[kpos, n, c, o]``: per (kpos, channel block) the input
  tile is loaded once, ν applied, and each basis function goes to one ``tl.dot`` (fp32/fp64 accumulate);
- input gradient: per input tile, for n = P−1 … 0, ``dL/dB_n`` is one implicit GEMM of ``dL/dy`` with ``w[·, n]``
  (masked where the stride skips), folded into dL/dt by the family's ``adjoint`` (plus Gram's coefficient partials,
  one slot per program and basis function: deterministic, no atomics);
- weight gradient: one program per (output block, channel block, kpos, n) reduces over output pixels.

Zero padding applies to the basis: every basis function (the constant one too) is 0 outside the input.

Fused base branch (``BASE = 1``, :mod:`kanseg.kernels.implicit_gemm_fused`): the base conv ``conv(φ(x), W_base)``
rides along as one more "basis function" (index ``P``, value ``φ(x)`` of the raw input, no dropout scale, φ = identity
for ``ACT = 0`` or SiLU for ``ACT = 1``), so both branches are one pass over x; the weight then has ``P + 1`` functions
per channel and the input gradient adds ``dL/dφ · φ'(x)``.
"""

from __future__ import annotations

import triton
import triton.language as tl

from kanseg.kernels.triton_expand import _input_map, _input_map_grad, sigmoid, zeros_like


@triton.jit
def _split(m, D, H, W):
    """``(b, d, h, w)`` of flat voxel indices ``m`` of a ``(B, D, H, W)`` grid."""
    w = m % W
    r = m // W
    h = r % H
    r = r // H
    return r // D, r % D, h, w


# tl.sum is a @jit function of triton.language (unusable in the interpreter when triton was imported first, see
# triton_expand); reducing with its combine function is the same op, and the interpreter runs it with numpy.
@triton.jit
def _sum(x, axis: tl.constexpr):
    return tl.reduce(x, axis, tl.standard._sum_combine)


@triton.jit
def _tile_sum(x):
    return _sum(_sum(x, 1), 0)


@triton.jit
def _acc_tile(BM: tl.constexpr, BN: tl.constexpr, F64: tl.constexpr):
    if F64:
        acc = tl.full((BM, BN), 0.0, tl.float64)
    else:
        acc = tl.full((BM, BN), 0.0, tl.float32)
    return acc


@triton.jit
def _basis_input(x_ptr, scale_ptr, vox, c, b, C, S, mask, MAP: tl.constexpr, HAS_SCALE: tl.constexpr,
                 F64: tl.constexpr):
    """``(x, t)`` tiles ``(rows, channels)``: ``x`` at voxel offsets ``vox`` (of ``b·C·S + spatial``) and channels
    ``c``, upcast to fp32/fp64; ``t = ν(x)·scale``."""
    x = tl.load(x_ptr + vox[:, None] + c[None, :].to(tl.int64) * S, mask=mask, other=0.0)
    if F64:
        x = x.to(tl.float64)
    else:
        x = x.to(tl.float32)
    t = _input_map(x, MAP)
    if HAS_SCALE:
        t = t * tl.load(scale_ptr + b[:, None] * C + c[None, :], mask=mask, other=0.0).to(t.dtype)
    return x, t


@triton.jit
def _base_act(x, ACT: tl.constexpr):
    """φ of the fused base branch: identity (``ACT = 0``) or SiLU (``ACT = 1``)."""
    if ACT == 1:
        x = x * sigmoid(x)
    return x


@triton.jit
def _base_act_grad(x, ACT: tl.constexpr):
    """φ'(x) of :func:`_base_act`."""
    if ACT == 1:
        s = sigmoid(x)
        d = s * (1.0 + x * (1.0 - s))
    else:
        d = tl.full(x.shape, 1.0, x.dtype)
    return d


@triton.jit
def _source(o, k, STRIDE: tl.constexpr, PAD: tl.constexpr, DIL: tl.constexpr, SIZE):
    """Input index read by output index ``o`` at kernel offset ``k``, and whether it lies inside the input."""
    i = o * STRIDE - PAD + k * DIL
    return i, (i >= 0) & (i < SIZE)


@triton.jit
def _target(i, k, STRIDE: tl.constexpr, PAD: tl.constexpr, DIL: tl.constexpr, SIZE):
    """Output index that reads input index ``i`` at kernel offset ``k``, and whether there is one."""
    num = i + PAD - k * DIL
    o = num // STRIDE
    return o, (num >= 0) & (num % STRIDE == 0) & (o < SIZE)


@triton.jit
def kan_conv_fwd_kernel(x_ptr, w_ptr, y_ptr, scale_ptr, prm_ptr, B, C, D, H, W, Do, Ho, Wo, Cg, Og,
                        VALUE: tl.constexpr, MAP: tl.constexpr, P: tl.constexpr, K0: tl.constexpr,
                        HAS_SCALE: tl.constexpr, F64: tl.constexpr, PRECISION: tl.constexpr,
                        KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, SD: tl.constexpr, SH: tl.constexpr,
                        SW: tl.constexpr, PD: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, LD: tl.constexpr,
                        LH: tl.constexpr, LW: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BC: tl.constexpr,
                        BASE: tl.constexpr = 0, ACT: tl.constexpr = 0):
    """Program ``(i, j)``: output voxels ``i·BM …`` × output channels block ``j`` (group-major)."""
    tiles_n = (Og + BN - 1) // BN
    g = tl.program_id(1) // tiles_n
    co = (tl.program_id(1) % tiles_n) * BN + tl.arange(0, BN)
    co_ok = co < Og
    m = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    m_ok = m < B * Do * Ho * Wo
    b, od, oh, ow = _split(m, Do, Ho, Wo)
    S = D * H * W
    acc = _acc_tile(BM, BN, F64)
    for kpos in range(KD * KH * KW):
        i_d, ok_d = _source(od, kpos // (KH * KW), SD, PD, LD, D)
        i_h, ok_h = _source(oh, (kpos // KW) % KH, SH, PH, LH, H)
        i_w, ok_w = _source(ow, kpos % KW, SW, PW, LW, W)
        inside = m_ok & ok_d & ok_h & ok_w
        vox = b * C * S + (i_d * H + i_h) * W + i_w
        w_kpos = w_ptr + (g * KD * KH * KW + kpos).to(tl.int64) * (P + BASE) * Cg * Og
        for c0 in range(0, Cg, BC):
            cl = c0 + tl.arange(0, BC)
            c_ok = cl < Cg
            mask = inside[:, None] & c_ok[None, :]
            x, t = _basis_input(x_ptr, scale_ptr, vox, g * Cg + cl, b, C, S, mask, MAP, HAS_SCALE, F64)
            w_mask = c_ok[:, None] & co_ok[None, :]
            p1 = zeros_like(t)
            p0 = zeros_like(t)
            for n in tl.static_range(P):
                value, state = VALUE(t, p1, p0, n, prm_ptr, K0)
                p0 = p1
                p1 = state
                value = tl.where(mask, value, 0.0)
                w = tl.load(w_kpos + n * Cg * Og + cl[:, None] * Og + co[None, :], mask=w_mask, other=0.0)
                acc = tl.dot(value.to(w.dtype), w, acc, input_precision=PRECISION)
            if BASE:
                value = tl.where(mask, _base_act(x, ACT), 0.0)
                w = tl.load(w_kpos + P * Cg * Og + cl[:, None] * Og + co[None, :], mask=w_mask, other=0.0)
                acc = tl.dot(value.to(w.dtype), w, acc, input_precision=PRECISION)
    So = Do * Ho * Wo
    y_off = b * (C // Cg) * Og * So + (od * Ho + oh) * Wo + ow
    y_ptrs = y_ptr + y_off[:, None] + (g * Og + co)[None, :].to(tl.int64) * So
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & co_ok[None, :])


@triton.jit
def kan_conv_dx_kernel(x_ptr, w_ptr, gy_ptr, gx_ptr, scale_ptr, prm_ptr, part_ptr, B, C, D, H, W, Do, Ho, Wo, Cg,
                       Og, ADJOINT: tl.constexpr, MAP: tl.constexpr, P: tl.constexpr, PP: tl.constexpr,
                       K0: tl.constexpr, NPART: tl.constexpr, HAS_SCALE: tl.constexpr, F64: tl.constexpr,
                       PRECISION: tl.constexpr, KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                       SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PD: tl.constexpr, PH: tl.constexpr,
                       PW: tl.constexpr, LD: tl.constexpr, LH: tl.constexpr, LW: tl.constexpr, BM: tl.constexpr,
                       BC: tl.constexpr, BO: tl.constexpr, BASE: tl.constexpr = 0, ACT: tl.constexpr = 0):
    """Program ``(i, j)``: input voxels ``i·BM …`` × input channel block ``j`` (group-major): dL/dx of the tile.

    ``w_ptr``: the weight as ``(G, KV, Og, Cg, PP)`` (``PP`` = P + BASE rounded up to a power of two,
    zero-padded), so one
    ``tl.dot`` per (kpos, output block) gives dL/dB_n for every n at once: a ``(BM, BC·PP)`` accumulator.
    """
    tiles_c = (Cg + BC - 1) // BC
    g = tl.program_id(1) // tiles_c
    c0 = (tl.program_id(1) % tiles_c) * BC
    cl = c0 + tl.arange(0, BC)
    c_ok = cl < Cg
    cols = c0 * PP + tl.arange(0, BC * PP)                       # (c, n) pairs, c-major
    cols_ok = cols < Cg * PP
    m = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    m_ok = m < B * D * H * W
    b, i_d, i_h, i_w = _split(m, D, H, W)
    S = D * H * W
    So = Do * Ho * Wo
    gy_batch = b * (C // Cg) * Og * So
    grad_b = _acc_tile(BM, BC * PP, F64)
    for kpos in range(KD * KH * KW):
        o_d, ok_d = _target(i_d, kpos // (KH * KW), SD, PD, LD, Do)
        o_h, ok_h = _target(i_h, (kpos // KW) % KH, SH, PH, LH, Ho)
        o_w, ok_w = _target(i_w, kpos % KW, SW, PW, LW, Wo)
        ok = m_ok & ok_d & ok_h & ok_w
        gy_off = gy_batch + (o_d * Ho + o_h) * Wo + o_w
        w_kpos = w_ptr + (g * KD * KH * KW + kpos).to(tl.int64) * Og * Cg * PP
        for o0 in range(0, Og, BO):
            co = o0 + tl.arange(0, BO)
            co_ok = co < Og
            gy = tl.load(gy_ptr + gy_off[:, None] + (g * Og + co)[None, :].to(tl.int64) * So,
                         mask=ok[:, None] & co_ok[None, :], other=0.0)
            w = tl.load(w_kpos + co[:, None] * Cg * PP + cols[None, :], mask=co_ok[:, None] & cols_ok[None, :],
                        other=0.0)
            grad_b = tl.dot(gy, w, grad_b, input_precision=PRECISION)
    grad_b = tl.reshape(grad_b, (BM, BC, PP))
    basis_index = tl.arange(0, PP)[None, None, :]
    mask = m_ok[:, None] & c_ok[None, :]
    vox = b * C * S + (i_d * H + i_h) * W + i_w
    x, t = _basis_input(x_ptr, scale_ptr, vox, g * Cg + cl, b, C, S, mask, MAP, HAS_SCALE, F64)
    grad_t = zeros_like(t)
    a1 = zeros_like(t)
    a2 = zeros_like(t)
    for n in tl.static_range(P - 1, -1, -1):
        grad_n = _sum(tl.where(basis_index == n, grad_b, 0.0), 2).to(t.dtype)
        part_t, adj, grad_c = ADJOINT(t, n, grad_n, a1, a2, prm_ptr, P, K0)
        grad_t += part_t
        a2 = a1
        a1 = adj
        if NPART > 0:
            program = tl.program_id(0) * tl.num_programs(1) + tl.program_id(1)
            tl.store(part_ptr + program * NPART + n, _tile_sum(tl.where(mask, grad_c, 0.0)))
    scale = 1.0
    if HAS_SCALE:
        scale = tl.load(scale_ptr + b[:, None] * C + (g * Cg + cl)[None, :], mask=mask, other=0.0).to(t.dtype)
    grad_x = grad_t * scale * _input_map_grad(x, MAP)
    if BASE:
        grad_base = _sum(tl.where(basis_index == P, grad_b, 0.0), 2).to(t.dtype)
        grad_x += grad_base * _base_act_grad(x, ACT)
    tl.store(gx_ptr + vox[:, None] + (g * Cg + cl)[None, :].to(tl.int64) * S, grad_x.to(gx_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def kan_conv_dw_kernel(x_ptr, gy_ptr, gw_ptr, scale_ptr, prm_ptr, B, C, D, H, W, Do, Ho, Wo, Cg, Og, chunk, split,
                       VALUE: tl.constexpr, MAP: tl.constexpr, P: tl.constexpr, PP: tl.constexpr, K0: tl.constexpr,
                       HAS_SCALE: tl.constexpr, F64: tl.constexpr, PRECISION: tl.constexpr,
                       KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, SD: tl.constexpr, SH: tl.constexpr,
                       SW: tl.constexpr, PD: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, LD: tl.constexpr,
                       LH: tl.constexpr, LW: tl.constexpr, BO: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
                       BASE: tl.constexpr = 0, ACT: tl.constexpr = 0):
    """Program ``(i, j, k)``: output channel block ``i`` (group-major) × input channel block ``j`` × (kpos, slice)
    ``k``; writes ``gw[slice, g, kpos, c, n, o]`` (``(split, G, KV, Cg, PP, Og)``, fp32/fp64, n < P + BASE) reduced over
    output voxels ``slice·chunk …`` (split-K: the launcher sums the slices).
    The B operand is the ``(BK, BC·PP)`` tile of every basis function of the channel block, column ``c·PP + n``."""
    tiles_o = (Og + BO - 1) // BO
    g = tl.program_id(0) // tiles_o
    co = (tl.program_id(0) % tiles_o) * BO + tl.arange(0, BO)
    co_ok = co < Og
    cols = tl.program_id(1) * BC * PP + tl.arange(0, BC * PP)    # (c, n) pairs, c-major
    cl = cols // PP
    basis_index = (cols % PP)[None, :]
    c_ok = cl < Cg
    kpos = tl.program_id(2) // split
    piece = tl.program_id(2) % split
    S = D * H * W
    So = Do * Ho * Wo
    acc = _acc_tile(BO, BC * PP, F64)
    for m0 in range(piece * chunk, tl.minimum(piece * chunk + chunk, B * So), BK):
        m = m0 + tl.arange(0, BK).to(tl.int64)
        m_ok = m < B * So
        b, od, oh, ow = _split(m, Do, Ho, Wo)
        i_d, ok_d = _source(od, kpos // (KH * KW), SD, PD, LD, D)
        i_h, ok_h = _source(oh, (kpos // KW) % KH, SH, PH, LH, H)
        i_w, ok_w = _source(ow, kpos % KW, SW, PW, LW, W)
        mask = (m_ok & ok_d & ok_h & ok_w)[:, None] & c_ok[None, :]
        vox = b * C * S + (i_d * H + i_h) * W + i_w
        x, t = _basis_input(x_ptr, scale_ptr, vox, g * Cg + cl, b, C, S, mask, MAP, HAS_SCALE, F64)
        p1 = zeros_like(t)
        p0 = zeros_like(t)
        basis = zeros_like(t)
        for j in tl.static_range(P):
            value, state = VALUE(t, p1, p0, j, prm_ptr, K0)
            p0 = p1
            p1 = state
            basis = tl.where(basis_index == j, value, basis)
        if BASE:
            basis = tl.where(basis_index == P, _base_act(x, ACT), basis)
        basis = tl.where(mask, basis, 0.0)
        gy_off = b * (C // Cg) * Og * So + (od * Ho + oh) * Wo + ow
        gy = tl.load(gy_ptr + gy_off[None, :] + (g * Og + co)[:, None].to(tl.int64) * So,
                     mask=co_ok[:, None] & m_ok[None, :], other=0.0)
        acc = tl.dot(gy, basis.to(gy.dtype), acc, input_precision=PRECISION)
    cols_ok = c_ok & (cols % PP < P + BASE)
    gw = gw_ptr + ((piece * (C // Cg) + g) * KD * KH * KW + kpos).to(tl.int64) * Cg * PP * Og
    tl.store(gw + cols[None, :] * Og + co[:, None], acc, mask=co_ok[:, None] & cols_ok[None, :])
