"""Weight import from the reference code: shared reference cases, plus 3D / groups / stride cases checked against an
independent re-statement of the reference forward pass (tests/kan/reference_model.py)."""

import zlib

import pytest
import torch

from kanseg.kan import from_torch_conv_kan
from tests.kan.reference_model import random_state_dict, reference_forward

FAMILY_OPTIONS = {
    "gram": {"degree": 3},
    "chebyshev": {"degree": 3},
    "legendre": {"degree": 3},
    "jacobi": {"degree": 3},
    "rbf": {"grid_size": 8},
    "bspline": {"grid_size": 5, "spline_order": 3},
    "relu": {"g": 5, "k": 3},
    "gram-bottleneck": {"degree": 3, "dim_reduction": 2},
    "wavelet": {"wavelet_type": "mexican_hat"},
}


def _import(case):
    norm = "batch" if "Batch" in str(case["norm"]) else "instance"
    return from_torch_conv_kan(case["state_dict"], case["family"], case["ndim"], case["in_channels"],
                               case["out_channels"], case["kernel_size"], stride=case["stride"],
                               padding=case["padding"], groups=case["groups"], norm=norm, **case["options"])


def test_shared_reference_cases(shared_dir):
    path = shared_dir / "reference" / "torch_conv_kan_cases.pt"
    if not path.exists():
        pytest.skip("reference cases absent")
    cases = torch.load(path, weights_only=False)
    assert {c["family"] for c in cases} >= set(FAMILY_OPTIONS)
    for case in cases:
        layer = _import(case)
        with torch.no_grad():
            y = layer(case["x"])
        assert torch.allclose(y, case["y"], atol=1e-5, rtol=0), case["family"]


SHAPES = [  # (nd, cin, cout, groups, stride, padding, dilation, spatial)
    (2, 4, 6, 1, 1, 1, 1, (9, 11)),
    (3, 4, 6, 1, 1, 1, 1, (5, 6, 7)),
    (2, 4, 6, 2, 1, 1, 1, (9, 11)),
    (2, 4, 6, 1, 2, 1, 1, (9, 11)),
    (3, 4, 6, 2, 2, 0, 1, (6, 7, 5)),
    (1, 6, 4, 2, 1, 2, 2, (13,)),
]


@pytest.mark.parametrize("family", sorted(FAMILY_OPTIONS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}d-g{s[3]}-s{s[4]}-d{s[6]}")
def test_import_matches_reference_semantics(family, shape):
    nd, cin, cout, groups, stride, padding, dilation, spatial = shape
    opts = FAMILY_OPTIONS[family]
    gen = torch.Generator().manual_seed(zlib.crc32(f"{family}{shape}".encode()))
    if family == "gram-bottleneck":  # make the inner width differ from I and O
        cin, cout = 8 * groups, 6 * groups
    sd = random_state_dict(family, nd, cin, cout, 3, groups, opts, gen)
    x = torch.randn(2, cin, *spatial, generator=gen)
    expected = reference_forward(family, sd, x, nd, groups, stride, padding, dilation, opts)
    layer = from_torch_conv_kan(sd, family, nd, cin, cout, 3, stride=stride, padding=padding, dilation=dilation,
                                groups=groups, norm="batch" if family == "wavelet" else "instance", **opts)
    with torch.no_grad():
        y = layer(x)
    assert y.shape == expected.shape
    assert torch.allclose(y, expected, atol=1e-5, rtol=0)


def test_bernstein_import_is_refused():
    with pytest.raises(ValueError, match="degenerate"):
        from_torch_conv_kan({}, "bernstein", 2, 4, 4, 3)


def test_missing_weights_named():
    with pytest.raises((ValueError, KeyError)):
        from_torch_conv_kan({"beta_weights": torch.zeros(4)}, "gram", 2, 4, 4, 3)
