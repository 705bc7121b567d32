import pytest
import torch

from kanseg.models import UNet, create_model
from kanseg.models.unet import UNetDecoder

from .tester import ModelTester


class TestUNet(ModelTester):
    template = UNet
    preset = "unet-gram"

    def test_decoder_block_widths(self):
        model = UNet(2, 3, 1, widths=[4, 8, 16], encoder_block="conv")
        assert isinstance(model.decoder, UNetDecoder)
        first_convs = [blk.layers[0][0] for blk in model.decoder.blocks]
        assert [(c.in_channels, c.out_channels) for c in first_convs] == [(16 + 8, 8), (8 + 4, 4)]

    def test_depth_one_is_a_single_block(self):
        model = UNet(2, 1, 2, widths=[4])
        assert model.size_divisor == 1
        assert model(torch.randn(1, 1, 7, 5)).shape == (1, 2, 7, 5)


@pytest.mark.parametrize("spatial_dims, size", [(2, (67, 93)), (3, (33, 34, 35))])
def test_sizes_named_in_the_issue(spatial_dims, size):
    model = create_model("unet-gram", spatial_dims=spatial_dims, in_channels=1, depth=4, base_width=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, *size)).shape == (1, 1, *size)


def _kan_levels(model) -> list[bool]:
    from kanseg.kan import is_kan_layer

    return [any(is_kan_layer(m) for m in level.modules()) for level in model.encoder.levels]


@pytest.mark.parametrize("template", ["unet-conv", "unetpp-gram", "attunet-gram"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_bottleneck_block_places_kan_in_the_deepest_level_only(template, spatial_dims):
    from kanseg.kan import is_kan_layer

    model = create_model(template, spatial_dims=spatial_dims, in_channels=1, depth=3, base_width=4,
                         encoder_block="conv", decoder_block="conv", bottleneck_block="kan:gram",
                         bottleneck_block_options={"degree": 1})
    assert _kan_levels(model) == [False, False, True]
    assert not any(is_kan_layer(m) for m in model.decoder.modules())
    degrees = {m.basis.degree for m in model.encoder.levels[-1].modules() if is_kan_layer(m)}
    assert degrees == {1}  # the bottleneck's options, merged over the (empty) shared ones
    x = torch.randn(2, 1, *[9] * spatial_dims, dtype=torch.float64)
    model = model.double()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.encoder.levels[-1].parameters())


def test_bottleneck_block_defaults_to_the_encoder_block_and_its_options_merge():
    model = UNet(2, 3, 1, widths=[4, 8, 16], encoder_block="kan:gram", decoder_block="conv",
                 encoder_block_options={"degree": 2}, bottleneck_block_options={"dropout": 0.25})
    assert _kan_levels(model) == [True, True, True]
    from kanseg.kan import is_kan_layer

    deepest = [m for m in model.encoder.levels[-1].modules() if is_kan_layer(m)]
    assert {m.basis.degree for m in deepest} == {2}
    assert any(isinstance(m, torch.nn.Dropout2d) or type(m).__name__.startswith("Dropout")
               for m in model.encoder.levels[-1].modules())
    assert not any(type(m).__name__.startswith("Dropout") for m in model.encoder.levels[0].modules())
