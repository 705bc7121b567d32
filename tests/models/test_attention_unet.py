import torch

from kanseg.models import AttentionUNet
from kanseg.models.parts import AttentionGate

from .tester import ModelTester


class TestAttentionUNet(ModelTester):
    template = AttentionUNet
    preset = "attunet-gram"

    def test_one_gate_per_skip(self):
        model = AttentionUNet(3, 1, 1, widths=[4, 8, 16, 32])
        gates = [m for m in model.modules() if isinstance(m, AttentionGate)]
        assert len(gates) == 3

    def test_gate_scales_skip_by_attention_in_unit_interval(self):
        torch.manual_seed(0)
        gate = AttentionGate(2, skip_channels=6, gate_channels=4).eval()
        skip, g = torch.randn(2, 6, 9, 11), torch.randn(2, 4, 9, 11)
        alpha = gate.attention(skip, g)
        assert alpha.shape == (2, 1, 9, 11)
        assert (alpha > 0).all() and (alpha < 1).all() and alpha.std() > 0
        torch.testing.assert_close(gate(skip, g), skip * alpha)
