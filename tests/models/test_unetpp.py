import pytest
import torch

from kanseg.models import UNetPlusPlus, create_model

from .tester import TINY, ModelTester


class TestUNetPlusPlus(ModelTester):
    template = UNetPlusPlus
    preset = "unetpp-gram"

    @pytest.mark.parametrize("spatial_dims, size", [(2, (35, 29)), (3, (17, 18, 19))])
    def test_deep_supervision_outputs(self, spatial_dims, size):
        # Group norm has no running statistics, so train and eval modes compute the same function.
        model = create_model("unetpp-gram-ds", **TINY, spatial_dims=spatial_dims, in_channels=1, out_channels=2,
                             block_options={"norm": "group"})
        x = torch.randn(1, 1, *size)
        ys = model.train()(x)
        assert isinstance(ys, list) and len(ys) == TINY["depth"] - 1
        assert all(y.shape == (1, 2, *size) for y in ys)
        assert not torch.allclose(ys[0], ys[1])
        with torch.no_grad():
            final = model.eval()(x)
        assert isinstance(final, torch.Tensor)
        torch.testing.assert_close(final, ys[0].detach())

    def test_nested_nodes_and_widths(self):
        model = UNetPlusPlus(2, 3, 1, widths=[4, 8, 16, 32])
        assert model.decoder.nodes == [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (0, 3)]
        conv = model.decoder.blocks["x0_3"].layers[0][0]  # input: X00, X01, X02 and up(X12)
        assert (conv.in_channels, conv.out_channels) == (3 * 4 + 8, 4)
        assert len(model.heads) == 1
