"""Import weights from the reference implementation (torch-conv-kan, "v1" per-group layers).

The reference keeps one module per group (``base_conv.{g}``, ``layer_norm.{g}``...) and, for Gram / Legendre /
Jacobi, orders basis channels degree-major (``n*I + c``). kanseg uses single grouped convs and a channel-major
layout (``c*P + n``), so the importer concatenates per-group tensors and permutes basis channels.
"""

from __future__ import annotations

import torch

from kanseg.kan.factory import parse_family
from kanseg.kan.layers import KANConv
from kanseg.kernels.recurrences import get_recurrence

_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def _cat_groups(sd: dict, prefix: str, groups: int) -> torch.Tensor:
    return torch.cat([sd[f"{prefix}.{g}.weight"] for g in range(groups)], dim=0)


def _degree_to_channel_major(w: torch.Tensor, num_basis: int) -> torch.Tensor:
    """Basis-conv weight ``(O, P*I, k…)`` in degree-major order -> ``(O, I*P, k…)`` channel-major."""
    o, pi, *k = w.shape
    return w.reshape(o, num_basis, pi // num_basis, *k).transpose(1, 2).reshape(o, pi, *k)


def _basis_conv_weight(sd: dict, family: str, layer: KANConv, groups: int) -> torch.Tensor:
    p = layer.basis.num_basis
    if "poly_weights" in sd:                                    # gram, legendre, jacobi: (G, O, P*I, k…)
        per_group = [sd["poly_weights"][g] for g in range(groups)]
    else:
        prefix = {"chebyshev": "poly_conv", "rbf": "spline_conv", "bspline": "spline_conv",
                  "relu": "relukan_conv"}[family]
        per_group = [sd[f"{prefix}.{g}.weight"] for g in range(groups)]
    if layer.basis.reference_layout == "degree":
        per_group = [_degree_to_channel_major(w, p) for w in per_group]
    return torch.cat(per_group, dim=0)


def _convert(sd: dict, family: str, layer: KANConv, groups: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if layer.base_conv is not None:
        out["base_conv.weight"] = _cat_groups(sd, "base_conv", groups)
    if layer.inner_proj is not None:
        out["inner_proj.weight"] = _cat_groups(sd, "inner_proj", groups)
        out["out_proj.weight"] = _cat_groups(sd, "out_proj", groups)
    if family == "wavelet":
        wc = [f"wavelet_conv.{g}" for g in range(groups)]
        to_rows = lambda v: v.reshape(v.shape[1], v.shape[2])  # noqa: E731  (1, O, I, 1…) -> (O, I)
        out["basis.scale"] = torch.cat([to_rows(sd[f"{w}.scale"]) for w in wc])
        out["basis.translation"] = torch.cat([to_rows(sd[f"{w}.translation"]) for w in wc])
        out["basis_conv.0.weight"] = torch.cat([sd[f"{w}.wavelet_weights.weight"] for w in wc])
        out["basis_conv.1.weight"] = torch.cat([sd[f"{w}.wavelet_out.weight"] for w in wc])
    else:
        out["basis_conv.weight"] = _basis_conv_weight(sd, family, layer, groups)
    recurrence = get_recurrence(family)
    if recurrence is not None and recurrence.learnable:  # gram: the reference's beta_weights scale C_n
        out[f"basis.{recurrence.learnable}"] = sd["beta_weights"]
    if family == "relu":  # reference: (1, I, P, 1…) shared by all groups -> per input channel (C_in, P)
        for name in ("phase_low", "phase_high"):
            v = sd[name].reshape(sd[name].shape[1], sd[name].shape[2])
            out[f"basis.{name}"] = v.repeat(groups, 1)
    if family == "rbf" and "rbf.grid" in sd:
        if not torch.allclose(sd["rbf.grid"].float(), layer.basis.grid):
            raise ValueError("rbf: the reference grid differs from grid_size/grid_range given to the importer")
    if family == "bspline":
        out["act.weight"] = torch.cat([sd[f"prelus.{g}.weight"].reshape(1) for g in range(groups)])
    for key in _NORM_KEYS:
        if f"layer_norm.0.{key}" in sd:
            out[f"norm.{key}"] = torch.cat([sd[f"layer_norm.{g}.{key}"] for g in range(groups)])
    if "layer_norm.0.num_batches_tracked" in sd:
        out["norm.num_batches_tracked"] = sd["layer_norm.0.num_batches_tracked"]
    return out


def from_torch_conv_kan(state_dict: dict, family: str, spatial_dims: int, in_channels: int, out_channels: int,
                        kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1,
                        norm: str = "instance", **family_options) -> KANConv:
    """The kanseg layer equivalent to a reference torch-conv-kan layer with this ``state_dict``.

    Args use the reference's names: ``family`` in gram, chebyshev, legendre, jacobi, rbf, bspline, relu, wavelet,
    gram-bottleneck (and ``<family>-bottleneck`` for the same state-dict layout); ``norm="batch"`` for wavelet;
    family options ``degree``, ``grid_size``, ``spline_order``, ``g``, ``k``, ``dim_reduction``, ``wavelet_type``.
    Legendre is imported with ``input_norm="batch-minmax"`` (the reference's batch-wide min-max).
    Bernstein cannot be imported: the reference's Bernstein basis is degenerate (``docs/deviations.md``, deviation 1).

    Returns the layer in eval mode; its output equals the reference layer's eval output.
    """
    base, _ = parse_family(family)
    if base == "bernstein":
        raise ValueError("bernstein: the reference Bernstein layer is degenerate (its basis is identically 1); "
                         "there is nothing faithful to import")
    options = dict(family_options)
    if base == "legendre":
        options.setdefault("input_norm", "batch-minmax")
    layer = KANConv(base, spatial_dims, in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                    dilation=dilation, groups=groups, norm=norm,
                    bottleneck=family.endswith("-bottleneck"), **options)
    converted = _convert(dict(state_dict), base, layer, groups)
    expected = set(layer.state_dict())
    missing = expected - set(converted)
    if missing:
        raise ValueError(f"cannot import {family!r}: no reference weights for {sorted(missing)}")
    with torch.no_grad():
        layer.load_state_dict(converted, strict=True)
    return layer.eval()
