"""Every three-term family's eager basis is its definition in ``kanseg.kernels.recurrences``, evaluated in float64
numpy; a family defined only by its coefficients works as a KAN layer."""

import numpy as np
import pytest
import torch

from kanseg.kan import create_kan_conv, get_family, list_families
from kanseg.kan.basis.polynomial import RecurrenceFamily
from kanseg.kernels.recurrences import CLAMP_EPS, get_recurrence, recurrence_names
from tests.kan.toy_family import register_hermite

T = np.linspace(-0.99, 0.99, 41)


def make(name, **opts):
    return get_family(name)(in_channels=1, out_channels=1, groups=1, spatial_dims=1, kernel_size=3, **opts).double()


def numpy_recurrence(name, degree, hparams, scale=None):
    """``(degree + 1, len(T))``: p_0 = 1, p_n = (A_n·t + B_n)·p_{n−1} − C_n·p_{n−2}, post-activation applied."""
    rec = get_recurrence(name)
    table = rec.table(degree, hparams)
    p = [np.ones_like(T)]
    for n in range(1, degree + 1):
        a, b, c = table[n]
        c = c * scale[n - 1] if scale is not None and n >= 2 else c
        p.append((a * T + b) * p[-1] - (c * p[-2] if n >= 2 else 0.0))
    p = np.stack(p)
    return p / (1 + np.exp(-p)) if rec.post == "silu" else p


def test_every_recurrence_is_an_eager_family():
    assert set(recurrence_names()) <= set(list_families())
    for name in recurrence_names():
        assert issubclass(get_family(name), RecurrenceFamily), name


@pytest.mark.parametrize("name,opts", [("gram", {}), ("chebyshev", {}), ("legendre", {}), ("jacobi", {}),
                                       ("jacobi", {"a": 0.5, "b": 2.0})])
def test_eager_basis_is_the_recurrence(name, opts):
    fam = make(name, degree=5, **opts)
    rec = get_recurrence(name)
    scale = None
    if rec.learnable:
        with torch.no_grad():
            getattr(fam, rec.learnable).copy_(torch.tensor([0.0, 0.3, -0.2, 0.5, 0.1, -0.4]))
        scale = getattr(fam, rec.learnable).detach().numpy()
    got = fam.basis(torch.from_numpy(T).view(1, 1, -1))[0, 0].detach().numpy()
    np.testing.assert_allclose(got, numpy_recurrence(name, 5, fam.hparams, scale), rtol=1e-13, atol=1e-13)


def test_input_maps_come_from_the_definition():
    x = torch.tensor([-30.0, -0.5, 0.0, 0.7, 30.0], dtype=torch.float64)
    lo, hi = -1 + CLAMP_EPS, 1 - CLAMP_EPS
    torch.testing.assert_close(make("chebyshev").input_map(x), torch.tanh(x).clamp(lo, hi), rtol=0, atol=0)
    torch.testing.assert_close(make("gram").input_map(x), torch.tanh(x), rtol=0, atol=0)


def test_family_defined_by_coefficients_only(monkeypatch):
    register_hermite(monkeypatch)
    fam = make("hermite", degree=4)
    got = fam.basis(torch.from_numpy(T).view(1, 1, -1))[0, 0].detach().numpy()
    he = np.stack([np.polynomial.hermite_e.hermeval(T, [0] * n + [1]) for n in range(5)])
    np.testing.assert_allclose(got, he / (1 + np.exp(-he)), rtol=1e-13, atol=1e-13)
    layer = create_kan_conv("hermite", 2, 3, 4, 3, padding=1)
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.abs().sum() > 0
