"""Norms and activations through MONAI's factories: names or (name, options), old names unchanged."""

import hashlib

import pytest
import torch
from torch import nn

from kanseg.kan import create_kan_conv
from kanseg.kan.factories import get_activation, get_norm
from kanseg.models import create_model


@pytest.mark.parametrize("name, nd, channels, expected", [
    ("instance", 2, 8, nn.InstanceNorm2d(8)),
    ("instance", 3, 8, nn.InstanceNorm3d(8)),
    ("batch", 1, 5, nn.BatchNorm1d(5)),
    ("group", 2, 12, nn.GroupNorm(4, 12)),
    ("group", 3, 7, nn.GroupNorm(1, 7)),
    ("none", 2, 4, nn.Identity()),
    (None, 2, 4, nn.Identity()),
    (("instance", {"affine": True}), 2, 6, nn.InstanceNorm2d(6, affine=True)),
    (["group", {"num_groups": 3}], 1, 12, nn.GroupNorm(3, 12)),  # a YAML list works as a pair
])
def test_norm_specs_build_the_expected_module(name, nd, channels, expected):
    norm = get_norm(name, nd, channels)
    assert type(norm) is type(expected) and repr(norm) == repr(expected)
    assert norm.state_dict().keys() == expected.state_dict().keys()


@pytest.mark.parametrize("name, expected", [
    ("relu", nn.ReLU()), ("gelu", nn.GELU()), ("silu", nn.SiLU()), ("identity", nn.Identity()), (None, nn.Identity()),
    ("tanh", nn.Tanh()), (("leakyrelu", {"negative_slope": 0.1}), nn.LeakyReLU(0.1)), ("LeakyReLU", nn.LeakyReLU()),
])
def test_activation_specs_build_the_expected_module(name, expected):
    act = get_activation(name)
    assert type(act) is type(expected) and repr(act) == repr(expected)


@pytest.mark.parametrize("call, match", [
    (lambda: get_norm("nope", 2, 4), "unknown norm 'nope'; valid: instance, batch, group, none, "),
    (lambda: get_activation("nope"), "unknown activation 'nope'; valid: silu, gelu, relu, identity, "),
    (lambda: get_norm(("batch", {"colour": 1}), 2, 4), "norm .*'colour'"),
    (lambda: get_norm(("batch", 1), 2, 4), r"norm must be a name or a \(name, options\) pair"),
])
def test_bad_specs_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_kan_layer_takes_norm_and_act_specs():
    layer = create_kan_conv("gram", 2, 4, 6, 3, padding=1, norm=("instance", {"affine": True}),
                            act=("leakyrelu", {"negative_slope": 0.1}))
    assert isinstance(layer.norm, nn.InstanceNorm2d) and layer.norm.affine
    assert isinstance(layer.act, nn.LeakyReLU) and layer.act.negative_slope == 0.1
    assert layer(torch.randn(1, 4, 8, 8)).shape == (1, 6, 8, 8)
    assert isinstance(create_kan_conv("gram", 2, 4, 6, 3).act, nn.SiLU)  # the family's default


def _digest(module: nn.Module) -> str:
    sha = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        sha.update(name.encode())
        sha.update(tensor.detach().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


# Recorded before norms and activations went through MONAI's factories: state_dict (names, order, values at
# seed 0) digest and output statistics (sum, |sum|, one element) on a fixed input.
BEFORE = {
    "gram": ("f423d3db3c926d2b", (266.4518, 506.9398, 1.982637)),
    "bspline": ("f84279f4faa2cdae", (388.0696, 646.7826, 0.60043)),
    "wavelet": ("1ab0c3e50ac6c520", (0.0, 1023.7816, 0.121495)),
    "unet-conv": ("4e71ab5bc10b44dd", (-891.8228, 951.989, -0.530872)),
    "unet-gram": ("fd4f857fc2ae2217", (908.4951, 908.4949, 0.155366)),
    "attunet-gram": ("c9405ee7b5e9e4b3", (-842.6421, 860.6528, -0.762457)),
}


@pytest.mark.parametrize("name", list(BEFORE))
def test_default_layers_and_models_are_unchanged(name):
    torch.manual_seed(0)
    if "-" in name:
        module = create_model(name, spatial_dims=2, in_channels=3, depth=3, base_width=4)
        shape = (2, 3, 35, 29)
    else:
        module = create_kan_conv(name, 2, 4, 8, 3, padding=1)
        shape = (2, 4, 9, 9)
    digest, (total, total_abs, element) = BEFORE[name]
    assert _digest(module) == digest
    with torch.no_grad():  # train mode, as recorded
        y = module(torch.randn(*shape, generator=torch.Generator().manual_seed(1)))
    assert float(y.sum()) == pytest.approx(total, abs=1e-3)
    assert float(y.abs().sum()) == pytest.approx(total_abs, rel=1e-5)
    assert float(y.flatten()[7]) == pytest.approx(element, rel=1e-4, abs=1e-6)
