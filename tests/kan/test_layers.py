"""KANConv behaviour: shapes, gradients, group isolation, parameter counts, numerics, errors."""

import pytest
import torch
from torch import nn

from kanseg.kan import KANConv, create_kan_conv, list_families

FAMILIES = list_families()
LAYERS = FAMILIES + ["gram-bottleneck", "chebyshev-bottleneck", "rbf-bottleneck"]
CONFIGS = [  # (groups, stride, padding, dilation)
    (1, 1, 1, 1),
    (2, 2, 1, 1),
    (2, 1, 2, 2),
]


def _x(nd, c=4, b=2, size=(7, 6, 5), dtype=torch.float32, seed=0):
    return torch.randn(b, c, *size[:nd], generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("family", LAYERS)
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "g{}-s{}-p{}-d{}".format(*c))
def test_output_shape_matches_conv(family, nd, cfg):
    groups, stride, padding, dilation = cfg
    layer = create_kan_conv(family, nd, 4, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ref = nn.Conv3d(4, 6, 3, stride, padding, dilation, groups) if nd == 3 else \
        {1: nn.Conv1d, 2: nn.Conv2d}[nd](4, 6, 3, stride, padding, dilation, groups)
    x = _x(nd)
    y = layer(x)
    assert y.shape == ref(x).shape
    assert y.dtype == x.dtype and torch.isfinite(y).all()


def _learnable_basis_params(layer):
    return [p for n, p in layer.named_parameters() if n.startswith("basis.") and p.requires_grad]


@pytest.mark.parametrize("family", LAYERS)
@pytest.mark.parametrize("nd", [2, 3])
def test_gradcheck_float64(family, nd):
    torch.manual_seed(0)
    layer = create_kan_conv(family, nd, 2, 2, 3, padding=1, norm="batch" if family == "wavelet" else None).double()
    size = (4, 3, 3) if nd == 3 else (4, 5)
    x = _x(nd, c=2, b=2, size=size, dtype=torch.float64).requires_grad_()
    params = _learnable_basis_params(layer)  # gram beta, relu phases, wavelet scale/translation
    names = [n for n, p in layer.named_parameters() if p.requires_grad and n.startswith("basis.")]

    def fn(x, *ps):
        state = dict(zip(names, ps))
        return torch.func.functional_call(layer, state, (x,))

    assert torch.autograd.gradcheck(fn, (x, *[p.detach().clone().requires_grad_() for p in params]),
                                    eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("family", LAYERS)
@pytest.mark.parametrize("nd", [2, 3])
def test_groups_are_isolated(family, nd):
    layer = create_kan_conv(family, nd, 4, 6, 3, padding=1, groups=2, norm="instance")
    x = _x(nd).requires_grad_()
    layer(x)[:, :3].sum().backward()           # output of group 0
    assert x.grad[:, 2:].abs().max() == 0      # ... does not depend on the input of group 1
    assert x.grad[:, :2].abs().max() > 0


def _count(layer):
    return sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_parameter_counts(nd, groups):
    cin, cout, k, d = 8, 6, 3, 3
    kk = k ** nd
    dense = cin * cout * kk // groups
    expected = {
        "gram": (d + 2) * dense + d + 1,
        "legendre": (d + 2) * dense,
        "jacobi": (d + 2) * dense,
        "bernstein": (d + 2) * dense,
        "chebyshev": (d + 1) * dense,
        "rbf": (8 + 1) * dense,
        "bspline": (5 + 3 + 1) * dense + groups,                    # + one PReLU slope per group
        "relu": (5 + 3 + 1) * dense + 2 * cin * (5 + 3),            # + learnable phases per input channel
        "wavelet": 2 * dense + cout * (cout // groups) + 2 * cout * (cin // groups),
    }
    for family, count in expected.items():
        layer = create_kan_conv(family, nd, cin, cout, k, groups=groups, norm="instance")
        assert _count(layer) == count, family


def test_bottleneck_parameter_count_and_efficiency():
    layer = create_kan_conv("gram-bottleneck", 2, 64, 64, 3, degree=3)
    r = 16  # max(64, 64) / 4
    expected = 64 * 64 * 9 + 64 * r + r * r * 4 * 9 + r * 64 + 4
    assert _count(layer) == expected
    plain = 64 * 64 * 9
    assert 1.2 < _count(layer) / plain < 1.4                                       # ~1.3x a plain conv
    assert _count(create_kan_conv("gram", 2, 64, 64, 3)) / plain > 4.9            # instead of 5x


def test_bottleneck_inner_width_rule():
    from kanseg.kan import bottleneck_width
    assert bottleneck_width(64, 64, 4) == 16
    assert bottleneck_width(256, 128, 4) == 64
    assert bottleneck_width(8, 32, 4) == 8       # raised to min(16, I, O)
    assert bottleneck_width(32, 32, 4) == 16


@pytest.mark.parametrize("family", LAYERS)
def test_no_nan_for_extreme_constant_and_autocast(family):
    layer = create_kan_conv(family, 2, 4, 4, 3, padding=1, norm="group")
    for x in (_x(2) * 1e4, torch.full((2, 4, 5, 5), 3.0), torch.zeros(2, 4, 5, 5)):
        x = x.clone().requires_grad_()
        layer.zero_grad()
        y = layer(x)
        y.square().mean().backward()
        assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)
    x = (_x(2) * 1e4).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.expand(x).dtype == torch.float32          # basis computed in fp32
        y = layer(x)
    y.float().sum().backward()
    assert torch.isfinite(y.float()).all() and torch.isfinite(x.grad).all()


def test_half_precision_input_keeps_dtype():
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1).to(torch.bfloat16)
    y = layer(_x(2).to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


@pytest.mark.parametrize("norm,cls", [("instance", nn.InstanceNorm2d), ("batch", nn.BatchNorm2d),
                                      ("group", nn.GroupNorm), ("none", nn.Identity)])
def test_norm_choice(norm, cls):
    assert isinstance(create_kan_conv("gram", 2, 4, 8, 3, norm=norm).norm, cls)
    assert isinstance(create_kan_conv("rbf", 2, 4, 8, 3, norm=norm).basis.input_norm, cls)  # rbf: norm is ν


def test_defaults_follow_the_paper():
    assert isinstance(create_kan_conv("wavelet", 2, 4, 4, 3).norm, nn.BatchNorm2d)
    assert isinstance(create_kan_conv("gram", 3, 4, 4, 3).norm, nn.InstanceNorm3d)
    assert create_kan_conv("chebyshev", 2, 4, 4, 3).base_conv is None


def test_dropout_active_only_in_training():
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1, dropout=0.5)
    x = _x(2)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(1)
    assert not torch.equal(a, layer(x))


@pytest.mark.parametrize("kwargs,match", [
    (dict(family="gramm"), "unknown KAN family 'gramm'; valid: bernstein, bspline"),
    (dict(in_channels=5, groups=2), "divisible by groups"),
    (dict(degree=-1), "degree must be an integer >= 0"),
    (dict(family="rbf", grid_range=(2, -2)), "low < high"),
    (dict(family="bspline", grid_size=0), "grid_size must be an integer >= 1"),
    (dict(family="rbf", grid_size=1), "grid_size must be an integer >= 2"),
    (dict(degre=3), r"unknown option\(s\) \['degre'\] for KAN family 'gram'; valid: degree"),
    (dict(norm="nope"), "unknown norm 'nope'; valid: instance, batch, group, none"),
    (dict(act="nope"), "unknown activation 'nope'; valid: silu, gelu, relu, identity"),
    (dict(spatial_dims=4), "spatial_dims must be 1, 2 or 3"),
    (dict(family="wavelet", wavelet_type="meyer"), "valid: mexican_hat, morlet, dog"),
    (dict(dropout=1.5), "dropout must be in"),
    (dict(groups=0), "groups must be a positive integer"),
])
def test_invalid_arguments(kwargs, match):
    args = dict(family="gram", spatial_dims=2, in_channels=4, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        create_kan_conv(**args)


def test_wrong_input_shape_is_explained():
    layer = create_kan_conv("gram", 2, 4, 4, 3)
    with pytest.raises(ValueError, match=r"expects \(B, 4, \*\*\) input with 2 spatial dims"):
        layer(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="2 spatial dims"):
        layer(torch.randn(1, 4, 8, 8, 8))


def test_is_a_kanconv_module():
    assert isinstance(create_kan_conv("legendre-bottleneck", 2, 32, 32, 3), KANConv)
