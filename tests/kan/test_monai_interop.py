"""KAN convolutions inside MONAI's own networks (DynUNet, BasicUNet): built, swapped, trained one step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet, DynUNet
from torch import nn

from kanseg.kan import KANConv, is_kan_layer
from kanseg.kan.monai_interop import ChannelBias, kan_conv_like, swap_convs_for_kan
from kanseg.models import create_model
from kanseg.models.dynunet import KANDynUNet

SIZES = {2: (16, 16), 3: (16, 16, 16)}


def dynunet(spatial_dims: int, res_block: bool = False) -> DynUNet:
    return DynUNet(spatial_dims, 1, 2, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2],
                   filters=[4, 8, 16], res_block=res_block)


def train_steps(net: nn.Module, spatial_dims: int, steps: int = 3) -> list[float]:
    torch.manual_seed(1)
    x = torch.randn(2, 1, *SIZES[spatial_dims])
    y = (x[:, 0] > 0).long()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        if step == 0:
            kan_params = [(n, p) for n, p in net.named_parameters() if _in_kan_layer(net, n)]
            assert kan_params
            missing = [n for n, p in kan_params if p.grad is None or not torch.isfinite(p.grad).all()
                       or p.grad.abs().sum() == 0]
            assert not missing, f"no gradient for KAN parameters {missing[:5]}"
        optimizer.step()
        losses.append(loss.item())
    return losses


def _in_kan_layer(net: nn.Module, name: str) -> bool:
    parts = name.split(".")
    return any(is_kan_layer(net.get_submodule(".".join(parts[:i]))) for i in range(1, len(parts)))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("family,res_block", [("gram", False), ("chebyshev-bottleneck", True)])
def test_dynunet_with_kan_convs_trains(spatial_dims, family, res_block):
    torch.manual_seed(0)
    net = dynunet(spatial_dims, res_block)
    n_convs = sum(isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.modules.conv._ConvTransposeNd)
                  and max(m.kernel_size) > 1 for m in net.modules())
    swapped = swap_convs_for_kan(net, family, degree=2)
    assert len(swapped) == n_convs and all(isinstance(net.get_submodule(n), KANConv) for n in swapped)
    assert isinstance(net.output_block.conv.conv, nn.Conv2d if spatial_dims == 2 else nn.Conv3d)  # 1x1 head stays
    losses = train_steps(net, spatial_dims)
    assert losses[-1] < losses[0]


def test_basic_unet_biased_convs_keep_a_bias():
    torch.manual_seed(0)
    net = BasicUNet(2, 1, 2, features=(4, 4, 8, 8, 16, 4))
    swapped = swap_convs_for_kan(net, "gram")
    first = net.get_submodule(swapped[0])
    assert isinstance(first, nn.Sequential) and isinstance(first[0], KANConv) and isinstance(first[1], ChannelBias)
    x = torch.randn(1, 1, 32, 32)
    assert net(x).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("spatial_dims,kwargs", [
    (1, {"kernel_size": 5, "padding": 2}),
    (2, {"kernel_size": 3, "stride": 2, "padding": 1}),
    (2, {"kernel_size": 3, "padding": 2, "dilation": 2, "groups": 2}),
    (3, {"kernel_size": (3, 3, 3), "stride": (2, 2, 2), "padding": (1, 1, 1)}),
])
def test_kan_conv_like_keeps_the_geometry(spatial_dims, kwargs):
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[spatial_dims - 1](4, 6, bias=False, **kwargs)
    layer = kan_conv_like(conv, "gram")
    x = torch.randn(2, 4, *[9] * spatial_dims)
    assert layer(x).shape == conv(x).shape
    assert isinstance(layer.norm, nn.Identity) and isinstance(layer.act, nn.Identity)  # MONAI's block has its own


def test_unsupported_geometry_names_the_layer_and_changes_nothing():
    net = DynUNet(3, 1, 2, kernel_size=[3, 3, (1, 3, 3)], strides=[1, 2, 2], upsample_kernel_size=[2, 2],
                  filters=[4, 8, 16])
    before = [type(m) for m in net.modules()]
    with pytest.raises(ValueError, match=r"^bottleneck\.conv1\.conv: .*kernel_size \(1, 3, 3\)"):
        swap_convs_for_kan(net, "gram")
    assert [type(m) for m in net.modules()] == before


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_dynunet_gram_preset(spatial_dims):
    torch.manual_seed(0)
    model = create_model("dynunet-gram", spatial_dims=spatial_dims, in_channels=1, out_channels=2, depth=3,
                         base_width=4)
    assert type(model) is KANDynUNet and isinstance(model.net, DynUNet)
    assert sum(is_kan_layer(m) for m in model.modules()) == 10  # 2 per level and per decoder level
    x = torch.randn(1, 1, *[13, 10, 9][:spatial_dims])  # any size: padded to a multiple of 4 and cropped back
    assert model.eval()(x).shape == (1, 2, *x.shape[2:])
    assert train_steps(model.train(), spatial_dims, steps=2)
