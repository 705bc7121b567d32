import pytest
import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.kan import KANConv, list_families
from kanseg.models import ConvBlock, ModelConfigError, create_block, list_blocks


def test_list_blocks_has_conv_and_every_family_plain_and_bottleneck():
    names = list_blocks()
    assert names[0] == "conv"
    for family in list_families():
        assert f"kan:{family}" in names and f"kan:{family}-bottleneck" in names
    assert len(names) == 1 + 2 * len(list_families())


@pytest.mark.parametrize("name", list_blocks())
def test_every_block_downsamples_and_maps_channels(name):
    torch.manual_seed(0)
    block = create_block(name, 2, 4, 6, stride=2)
    y = block(torch.randn(2, 4, 9, 11))
    assert y.shape == (2, 6, 5, 6)
    assert torch.isfinite(y).all()


def test_conv_block_is_conv_bn_relu_twice_by_default():
    block = create_block("conv", 3, 2, 5)
    assert isinstance(block, ConvBlock) and block.shortcut is None
    for layer in block.layers:
        assert [isinstance(m, t) for m, t in zip(layer, (nn.Conv3d, nn.BatchNorm3d, nn.ReLU))] == [True] * 3
        assert len(layer) == 3
    assert block.layers[0][0].bias is None


def test_kan_block_options_reach_the_layers():
    block = create_block("kan:chebyshev", 2, 3, 4, n_convs=3, degree=5, norm="group")
    assert len(block.layers) == 3 and all(isinstance(m, KANConv) for m in block.layers)
    assert all(m.basis.degree == 5 for m in block.layers)
    assert all(any(isinstance(n, nn.GroupNorm) for n in m.modules()) for m in block.layers)


def test_norm_and_act_specs_reach_every_block_layer():
    conv = create_block("conv", 2, 3, 4, norm=("instance", {"affine": True}),
                        act=("leakyrelu", {"negative_slope": 0.1}))
    types = (nn.Conv2d, nn.InstanceNorm2d, nn.LeakyReLU)
    assert len(conv.layers[0]) == 3 and all(isinstance(m, t) for m, t in zip(conv.layers[0], types))
    assert conv.layers[0][1].affine and conv.layers[0][2].negative_slope == 0.1
    kan = create_block("kan:gram", 3, 2, 4, norm="batch", act="gelu")
    assert all(isinstance(m.norm, nn.BatchNorm3d) and isinstance(m.act, nn.GELU) for m in kan.layers)


def test_residual_identity_adds_the_input():
    torch.manual_seed(0)
    block = create_block("kan:gram", 2, 4, 4, residual=True).eval()
    assert isinstance(block.shortcut, nn.Identity)
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(block(x), block.layers(x) + x)


def test_residual_projection_when_shape_changes():
    block = create_block("conv", 2, 4, 8, stride=2, residual=True)
    assert isinstance(block.shortcut, nn.Conv2d)
    assert block.shortcut.stride == (2, 2) and block.shortcut.kernel_size == (1, 1)
    assert block(torch.randn(1, 4, 9, 9)).shape == (1, 8, 5, 5)


def test_bottleneck_block_is_much_smaller_than_plain():
    def n_params(name):
        return sum(p.numel() for p in create_block(name, 2, 64, 64).parameters())

    plain, bottleneck, conv = n_params("kan:gram"), n_params("kan:gram-bottleneck"), n_params("conv")
    assert bottleneck < plain / 3
    assert conv < bottleneck < 2 * conv


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="kan:nope"), r"unknown block 'kan:nope'; valid: conv, kan:bernstein"),
    (dict(name="gram"), r"unknown block 'gram'; valid: conv"),
    (dict(name="conv", degree=3), r"unknown option\(s\) \['degree'\] for block 'conv'; valid: .*act"),
    (dict(name="kan:gram", grid_size=4), r"block 'kan:gram': .*grid_size"),
    (dict(name="kan:gram", degree=-1), r"block 'kan:gram': .*degree"),
    (dict(name="kan:gram", norm="nope"), r"block 'kan:gram': .*norm"),
    (dict(name="conv", n_convs=0), r"n_convs must be >= 1"),
    (dict(name="conv", kernel_size=4), r"kernel_size must be odd"),
    (dict(name="conv", act="tanhh"), r"block 'conv': unknown activation 'tanhh'"),
])
def test_bad_block_configs_are_one_line_errors(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ModelConfigError, match=message) as info:
        create_block(name, 2, 4, 4, **kwargs)
    assert isinstance(info.value, KansegError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
