"""The lean layout (kanseg.kan.lean): constant basis maps folded into a ones-conv, same values and gradients as the
reference layer, and taken only where it applies."""

import pytest
import torch

from kanseg.kan import create_kan_conv, lean
from kanseg.kernels.memory import saved_bytes

POLY = ["gram", "chebyshev", "legendre", "jacobi", "bernstein"]
CASES = [  # (family, nd, groups, stride, padding, dilation, degree)
    *[(f, nd, 1, 1, 1, 1, 3) for f in POLY for nd in (1, 2, 3)],
    *[(f, 2, 2, 2, 1, 1, d) for f in ("gram", "chebyshev", "bernstein") for d in (0, 1, 2)],
    ("gram", 3, 2, 1, 2, 2, 3),
    ("legendre", 2, 1, 2, 0, 1, 4),
    ("jacobi", 2, 2, 1, 1, 2, 3),
    ("gram-bottleneck", 2, 2, 1, 1, 1, 3),
    ("chebyshev-bottleneck", 3, 1, 2, 1, 1, 0),
]


def _run(layer, x, mode, monkeypatch, grad=True):
    monkeypatch.setenv("KANSEG_KERNELS", mode)
    layer.zero_grad(set_to_none=True)
    if not grad:
        with torch.no_grad():
            return layer(x), []
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype))
    return y.detach(), [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in layer.parameters()]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{}-{}d-g{}-s{}-p{}-d{}-deg{}".format(*c))
def test_lean_equals_reference_fp64(case, monkeypatch):
    """Values (border pixels included: zero padding makes the constant map position dependent) and every gradient,
    fused with gradients and plain under no_grad, against KANSEG_KERNELS=eager."""
    family, nd, groups, stride, padding, dilation, degree = case
    torch.manual_seed(0)
    layer = create_kan_conv(family, nd, 4, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=groups,
                            degree=degree).double()
    assert layer._lean
    x = torch.randn(2, 4, *(7, 6, 5)[:nd], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y_ref, g_ref = _run(layer, x, "eager", monkeypatch)
    for mode in ("auto", "fused"):
        y, g = _run(layer, x, mode, monkeypatch)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
        for a, b in zip(g, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    y, _ = _run(layer, x, "auto", monkeypatch, grad=False)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)


def test_lean_weight_and_constant_map_shapes():
    """A degree-3 recurrence convolves 3 of its 4 maps per channel; the constant p_0 becomes a (1, C_out, *S') map
    equal to the reference conv of the constant channels alone."""
    torch.manual_seed(0)
    layer = create_kan_conv("gram", 2, 4, 6, 3, padding=1, groups=2).double()
    constants = layer.basis.constant_basis(torch.float64)
    assert lean.lean_weight(layer, constants).shape == (6, 2 * 3, 3, 3)
    z = torch.randn(3, 4, 5, 7, dtype=torch.float64)
    const = lean.constant_map(layer, z, constants)
    expanded = torch.zeros(1, 4 * 4, 5, 7, dtype=torch.float64)
    expanded[:, 0::4] = torch.nn.functional.silu(torch.ones((), dtype=torch.float64))  # B_0 = SiLU(p_0) = SiLU(1)
    torch.testing.assert_close(const, layer.basis_conv(expanded))
    bernstein = create_kan_conv("bernstein", 2, 4, 6, 3)
    assert lean.constant_map(bernstein, z, bernstein.basis.constant_basis(torch.float32)) is None  # degree 3: none


def test_lean_gradcheck(monkeypatch):
    monkeypatch.setenv("KANSEG_KERNELS", "fused")
    torch.manual_seed(0)
    layer = create_kan_conv("gram", 2, 2, 3, 3, padding=1, stride=2, norm="none").double()
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    beta = layer.basis.beta
    assert torch.autograd.gradcheck(lambda b: torch.func.functional_call(layer, {"basis.beta": b}, (x,)),
                                    (beta.detach().clone().requires_grad_(),))


@pytest.mark.parametrize(("family", "options", "expected"), [
    ("gram", {}, True), ("bernstein", {}, True), ("gram-bottleneck", {}, True),
    ("rbf", {}, False), ("wavelet", {}, False), ("bspline", {}, False),
    ("gram", {"dropout": 0.2, "dropout_placement": "degree"}, False),
    ("gram", {"dropout": 0.2, "dropout_kind": "noise"}, False),
    ("gram", {"dropout": 0.2, "dropout_placement": "full"}, True),
])
def test_lean_only_where_it_applies(family, options, expected):
    assert create_kan_conv(family, 2, 4, 4, 3, padding=1, **options)._lean is expected


def test_lean_poly_dropout_matches_reference_distribution(monkeypatch):
    """Channel dropout on ν(x) (poly placement): a dropped channel is evaluated at t = 0 by both paths, so with the
    same seed the lean and reference outputs agree."""
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1, dropout=0.5).double().train()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    outs = []
    for mode in ("eager", "fused"):
        monkeypatch.setenv("KANSEG_KERNELS", mode)
        torch.manual_seed(3)
        outs.append(layer(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)


def test_lean_keeps_the_fused_memory(monkeypatch):
    """Saved for backward: the lean fused layer saves no more than the fused reference layout did (input, weights),
    a quarter of what the eager degree-3 layer saves."""
    layer = create_kan_conv("gram", 2, 8, 8, 3, padding=1)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    sizes = {}
    for mode in ("eager", "fused"):
        monkeypatch.setenv("KANSEG_KERNELS", mode)
        sizes[mode] = saved_bytes(lambda: layer(x))
    assert sizes["fused"] * 4 < sizes["eager"]


def test_lean_under_autocast_matches_eager(monkeypatch):
    torch.manual_seed(0)
    layer = create_kan_conv("chebyshev", 2, 4, 4, 3, padding=1)
    x = torch.randn(2, 4, 8, 8)
    outs = []
    for mode in ("eager", "auto"):
        monkeypatch.setenv("KANSEG_KERNELS", mode)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs.append(layer(x).float())
    torch.testing.assert_close(outs[0], outs[1], rtol=0.05, atol=0.05)
