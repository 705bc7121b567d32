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
