"""Basis values against independent implementations of the formulas (scipy / closed forms)."""

import math

import numpy as np
import pytest
import torch
from scipy import interpolate, special

from kanseg.kan import get_family

T = torch.linspace(-0.99, 0.99, 41, dtype=torch.float64).view(1, 1, -1)  # (B=1, C=1, L)


def make(name, **opts):
    return get_family(name)(in_channels=1, out_channels=1, groups=1, spatial_dims=1, kernel_size=3, **opts).double()


def values(family, t=T):
    return family.basis(t)[0, 0].detach().numpy()  # (P, L)


@pytest.mark.parametrize("degree", [0, 1, 2, 5])
def test_legendre(degree):
    got = values(make("legendre", degree=degree))
    want = np.stack([special.eval_legendre(n, T.flatten().numpy()) for n in range(degree + 1)])
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 3, 6])
def test_chebyshev(degree):
    got = values(make("chebyshev", degree=degree))
    want = np.stack([np.cos(n * np.arccos(T.flatten().numpy())) for n in range(degree + 1)])
    np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (0.5, 2.0), (0.0, 0.0)])
def test_jacobi(a, b):
    got = values(make("jacobi", degree=4, a=a, b=b))
    want = np.stack([special.eval_jacobi(n, a, b, T.flatten().numpy()) for n in range(5)])
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_bernstein_is_true_basis():
    t = torch.linspace(0.01, 0.99, 17, dtype=torch.float64).view(1, 1, -1)
    got = values(make("bernstein", degree=4), t)
    tt = t.flatten().numpy()
    want = np.stack([math.comb(4, n) * tt**n * (1 - tt) ** (4 - n) for n in range(5)])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(got.sum(0), 1.0, atol=1e-12)  # partition of unity: not the reference's all-ones


def test_gram_recurrence_with_learned_beta():
    fam = make("gram", degree=4)
    with torch.no_grad():
        fam.beta.copy_(torch.tensor([0.0, 0.3, -0.2, 0.5, 0.1]))
    t = T.flatten().numpy()
    w = fam.beta.detach().numpy()
    p = [np.ones_like(t), t]
    for m in range(2, 5):
        n = m - 1
        beta = w[n] * (m + n) * (m - n) * n**2 * (4 * n**2 - 1) / m**2
        p.append(t * p[-1] - beta * p[-2])
    silu = lambda v: v / (1 + np.exp(-v))  # noqa: E731
    np.testing.assert_allclose(values(fam), silu(np.stack(p)), atol=1e-12)


def test_rbf_centres_and_width():
    fam = make("rbf", grid_size=5, grid_range=(-1.0, 1.0))
    t = T.flatten().numpy()
    want = np.stack([np.exp(-(((t - c) / 0.5) ** 2)) for c in np.linspace(-1, 1, 5)])
    np.testing.assert_allclose(values(fam), want, atol=1e-12)


@pytest.mark.parametrize("grid_size,order", [(5, 3), (4, 2), (3, 1)])
def test_bspline_against_scipy(grid_size, order):
    fam = make("bspline", grid_size=grid_size, spline_order=order)
    h = 2.0 / grid_size
    knots = np.linspace(-1 - order * h, 1 + order * h, grid_size + 2 * order + 1)
    t = T.flatten().numpy()
    want = np.stack([interpolate.BSpline.basis_element(knots[i:i + order + 2], extrapolate=False)(t)
                     for i in range(grid_size + order)])
    # knots are stored in float32 (like the reference), hence ~1e-7 differences
    np.testing.assert_allclose(values(fam), np.nan_to_num(want), atol=1e-6)


def test_relu_basis_formula():
    fam = make("relu", g=5, k=3)
    t = T.flatten().numpy()
    r = 4 * 25 / 16
    want = []
    for i in range(1, 9):
        lo = (i - 3 - 1) / 5
        hi = lo + 4 / 5
        want.append((r * np.maximum(t - lo, 0) * np.maximum(hi - t, 0)) ** 2)
    np.testing.assert_allclose(values(fam), np.stack(want), atol=1e-5)  # float32 phases


@pytest.mark.parametrize("wtype", ["mexican_hat", "morlet", "dog"])
def test_wavelets(wtype):
    fam = get_family("wavelet")(in_channels=2, out_channels=3, groups=1, spatial_dims=1, kernel_size=1,
                                wavelet_type=wtype).double()
    with torch.no_grad():
        fam.scale.copy_(torch.tensor([[1.0, 2.0], [0.5, 1.5], [1.0, 1.0]]))
        fam.translation.copy_(torch.tensor([[0.0, 0.1], [-0.3, 0.2], [0.5, 0.0]]))
    x = torch.randn(2, 2, 7, dtype=torch.float64)
    got = fam.expand(x).detach().view(2, 3, 2, 7)  # (B, O, I, L)
    psi = {"mexican_hat": lambda u: 2 / (math.sqrt(3) * math.pi**0.25) * (u**2 - 1) * np.exp(-u**2 / 2),
           "morlet": lambda u: np.cos(5 * u) * np.exp(-u**2 / 2),
           "dog": lambda u: -u * np.exp(-u**2 / 2)}[wtype]
    s, tr = fam.scale.detach().numpy(), fam.translation.detach().numpy()
    xn = x.numpy()
    for o in range(3):
        for i in range(2):
            np.testing.assert_allclose(got[:, o, i].numpy(), psi((xn[:, i] - tr[o, i]) / s[o, i]), atol=1e-12)


def test_legendre_sample_minmax_is_per_sample():
    fam = make("legendre")
    x = torch.randn(3, 1, 10, dtype=torch.float64)
    t_all = fam.input_map(x)
    t_one = fam.input_map(x[1:2])
    assert torch.allclose(t_all[1:2], t_one)                 # samples do not influence each other
    assert t_all.amin() == -1 and t_all.amax() == 1
    const = fam.input_map(torch.full((2, 1, 5), 7.0, dtype=torch.float64))
    assert torch.isfinite(const).all() and (const == -1).all()
