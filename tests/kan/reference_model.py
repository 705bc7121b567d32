"""A small, independent re-statement of the reference (torch-conv-kan "v1") layers' forward pass, written from the
spec's formulas, used to check the importer on shapes the shared cases do not cover (3D, groups > 1, stride 2).

It works on reference-format state dicts: per-group modules, degree-major basis for gram/legendre/jacobi, the
reference's batch-wide min-max for legendre. Deliberately loop-based and unoptimised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def random_state_dict(family: str, nd: int, cin: int, cout: int, k: int, groups: int, opts: dict, gen) -> dict:
    I, O = cin // groups, cout // groups
    ks = (k,) * nd
    one = (1,) * nd
    r = lambda *s: torch.randn(*s, generator=gen) * 0.3  # noqa: E731
    sd = {}
    base = family.replace("-bottleneck", "")
    if base != "chebyshev":
        for g in range(groups):
            sd[f"base_conv.{g}.weight"] = r(O, I, *ks)
    P = {"gram": 4, "legendre": 4, "jacobi": 4, "chebyshev": 4}.get(base)
    if base in ("gram", "legendre", "jacobi", "chebyshev"):
        P = opts.get("degree", 3) + 1
    if family == "gram-bottleneck":
        rr = max(int(max(I / opts["dim_reduction"], O / opts["dim_reduction"])), 0)
        rr = min(16, I, O) if rr < 16 else rr
        sd["poly_weights"] = r(groups, rr, rr * P, *ks)
        sd["beta_weights"] = r(P)
        for g in range(groups):
            sd[f"inner_proj.{g}.weight"] = r(rr, I, *one)
            sd[f"out_proj.{g}.weight"] = r(O, rr, *one)
    elif base in ("gram", "legendre", "jacobi"):
        sd["poly_weights"] = r(groups, O, I * P, *ks)
        if base == "gram":
            sd["beta_weights"] = r(P)
    elif base == "chebyshev":
        for g in range(groups):
            sd[f"poly_conv.{g}.weight"] = r(O, I * P, *ks)
    elif base == "rbf":
        n = opts["grid_size"]
        for g in range(groups):
            sd[f"spline_conv.{g}.weight"] = r(O, I * n, *ks)
        sd["rbf.grid"] = torch.linspace(-2, 2, n)
    elif base == "bspline":
        n = opts["grid_size"] + opts["spline_order"]
        for g in range(groups):
            sd[f"spline_conv.{g}.weight"] = r(O, I * n, *ks)
            sd[f"prelus.{g}.weight"] = torch.rand(1, generator=gen)
    elif base == "relu":
        gg, kk = opts["g"], opts["k"]
        low = torch.arange(-kk, gg) / gg + r(I, gg + kk) * 0.1
        sd["phase_low"] = low.view(1, I, gg + kk, *one)
        sd["phase_high"] = (low + (kk + 1) / gg).view(1, I, gg + kk, *one)
        for g in range(groups):
            sd[f"relukan_conv.{g}.weight"] = r(O, I * (gg + kk), *ks)
    elif base == "wavelet":
        for g in range(groups):
            sd[f"wavelet_conv.{g}.scale"] = 1 + torch.rand(1, O, I, *one, generator=gen)
            sd[f"wavelet_conv.{g}.translation"] = r(1, O, I, *one)
            sd[f"wavelet_conv.{g}.wavelet_weights.weight"] = r(O, I, *ks)
            sd[f"wavelet_conv.{g}.wavelet_out.weight"] = r(O, O, *one)
            sd[f"layer_norm.{g}.weight"] = 1 + r(O)
            sd[f"layer_norm.{g}.bias"] = r(O)
            sd[f"layer_norm.{g}.running_mean"] = r(O)
            sd[f"layer_norm.{g}.running_var"] = 1 + torch.rand(O, generator=gen)
            sd[f"layer_norm.{g}.num_batches_tracked"] = torch.tensor(3)
    return sd


def _inorm(x):
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


def _gram_beta(w, n, m):
    return w[n] * ((m + n) * (m - n) * n**2) / (m**2 / (4.0 * n**2 - 1.0))


def _degree_major(polys):  # list of (B, I, *S) -> (B, P*I, *S), index n*I + c
    return torch.cat(polys, dim=1)


def _channel_major(polys):  # -> (B, I*P, *S), index c*P + n
    return torch.stack(polys, dim=2).flatten(1, 2)


def reference_forward(family: str, sd: dict, x: torch.Tensor, nd: int, groups: int, stride: int, padding: int,
                      dilation: int, opts: dict) -> torch.Tensor:
    conv = CONV[nd]
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    outs = []
    base = family.replace("-bottleneck", "")
    for g, xg in enumerate(torch.chunk(x, groups, dim=1)):
        y_base = 0
        if base != "chebyshev":
            phi = {"gram": F.silu, "rbf": F.silu, "relu": F.silu, "wavelet": F.silu, "bspline": F.gelu}.get(
                base, lambda v: v)
            y_base = conv(phi(xg), sd[f"base_conv.{g}.weight"], **kw)
        if base == "gram":
            z = conv(xg, sd[f"inner_proj.{g}.weight"]) if family.endswith("bottleneck") else xg
            t = torch.tanh(z)
            D = opts.get("degree", 3)
            ps = [torch.ones_like(t), t]
            for i in range(2, D + 1):
                ps.append(t * ps[-1] - _gram_beta(sd["beta_weights"], i - 1, i) * ps[-2])
            y = conv(F.silu(_degree_major(ps[: D + 1])), sd["poly_weights"][g], **kw)
            if family.endswith("bottleneck"):
                y = conv(y, sd[f"out_proj.{g}.weight"])
            outs.append(F.silu(_inorm(y + y_base)))
        elif base == "chebyshev":
            t = torch.clamp(torch.tanh(xg), -1 + 1e-7, 1 - 1e-7)
            ps = [torch.cos(n * torch.acos(t)) for n in range(opts.get("degree", 3) + 1)]
            outs.append(_inorm(conv(_channel_major(ps), sd[f"poly_conv.{g}.weight"], **kw)))
        elif base == "legendre":
            t = 2 * (xg - xg.min()) / (xg.max() - xg.min()) - 1
            D = opts.get("degree", 3)
            ps = [torch.ones_like(t), t]
            for n in range(1, D):
                ps.append(((2 * n + 1) * t * ps[-1] - n * ps[-2]) / (n + 1))
            y = conv(_degree_major(ps[: D + 1]), sd["poly_weights"][g], **kw)
            outs.append(F.silu(_inorm(y + y_base)))
        elif base == "jacobi":
            a = b = 1.0
            t = torch.tanh(xg)
            D = opts.get("degree", 3)
            ps = [torch.ones_like(t), ((a - b) + (a + b + 2) * t) / 2]
            for n in range(2, D + 1):
                A = (2 * n + a + b) * (2 * n + a + b - 1) / (2 * n * (n + a + b))
                Bc = (2 * n + a + b - 1) * (a * a - b * b) / (2 * n * (n + a + b) * (2 * n + a + b - 2))
                C = (n + a - 1) * (n + b - 1) * (2 * n + a + b) / (n * (n + a + b) * (2 * n + a + b - 2))
                ps.append((A * t + Bc) * ps[-1] - C * ps[-2])
            y = conv(_degree_major(ps[: D + 1]), sd["poly_weights"][g], **kw)
            outs.append(F.silu(_inorm(y + y_base)))
        elif base == "rbf":
            t = _inorm(xg)
            grid = sd["rbf.grid"]
            h = (grid[-1] - grid[0]) / (len(grid) - 1)
            ps = [torch.exp(-(((t - c) / h) ** 2)) for c in grid]
            outs.append(y_base + conv(_channel_major(ps), sd[f"spline_conv.{g}.weight"], **kw))
        elif base == "bspline":
            G, K = opts["grid_size"], opts["spline_order"]
            h = 2.0 / G
            knots = [-1 - K * h + i * h for i in range(G + 2 * K + 1)]

            def N(i, k, v):  # Cox-de Boor, recursive
                if k == 0:
                    return ((v >= knots[i]) & (v < knots[i + 1])).to(v.dtype)
                return ((v - knots[i]) / (knots[i + k] - knots[i]) * N(i, k - 1, v)
                        + (knots[i + k + 1] - v) / (knots[i + k + 1] - knots[i + 1]) * N(i + 1, k - 1, v))

            ps = [N(i, K, xg) for i in range(G + K)]
            y = _inorm(y_base + conv(_channel_major(ps), sd[f"spline_conv.{g}.weight"], **kw))
            outs.append(F.prelu(y, sd[f"prelus.{g}.weight"]))
        elif base == "relu":
            gg, kk = opts["g"], opts["k"]
            r = 4 * gg * gg / ((kk + 1) ** 2)
            lo = sd["phase_low"].flatten(1, 2).squeeze(0)   # (I*P, 1...) channel-major after flatten
            hi = sd["phase_high"].flatten(1, 2).squeeze(0)
            xr = xg.repeat_interleave(gg + kk, dim=1)
            v = (torch.relu(xr - lo) * torch.relu(hi - xr) * r) ** 2
            y = conv(v, sd[f"relukan_conv.{g}.weight"], **kw)
            outs.append(F.silu(_inorm(y + y_base)))
        elif base == "wavelet":
            p = f"wavelet_conv.{g}"
            u = (xg.unsqueeze(1) - sd[f"{p}.translation"]) / sd[f"{p}.scale"]   # (B, O, I, *S)
            psi = 2 / (math.sqrt(3) * math.pi**0.25) * (u**2 - 1) * torch.exp(-0.5 * u**2)
            w = sd[f"{p}.wavelet_weights.weight"]
            y = torch.cat([conv(psi[:, o], w[o:o + 1], **kw) for o in range(w.shape[0])], dim=1)
            y = conv(y, sd[f"{p}.wavelet_out.weight"]) + y_base
            ln = lambda key: sd[f"layer_norm.{g}.{key}"]  # noqa: E731
            y = F.batch_norm(y, ln("running_mean"), ln("running_var"), ln("weight"), ln("bias"), False)
            outs.append(y)
    return torch.cat(outs, dim=1)
