import time

import torch
from torch import nn

from kanseg.kan import create_kan_conv
from kanseg.models import create_model
from kanseg.models.complexity import count_parameters, measure_complexity


def test_conv_macs_and_bias_ops_are_exact():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=True)
    c = measure_complexity(conv, (3, 10, 12))
    assert c.conv_macs == 8 * 10 * 12 * 3 * 9
    assert c.other_ops == 8 * 10 * 12  # bias add
    assert c.kan_ops == 0 and c.params == 8 * 3 * 9 + 8
    assert c.flops == 2 * c.conv_macs + c.other_ops


def test_grouped_strided_3d_conv_macs():
    conv = nn.Conv3d(4, 8, 3, stride=2, padding=1, groups=2, bias=False)
    c = measure_complexity(conv, (4, 8, 8, 8))
    assert c.conv_macs == 8 * 4 * 4 * 4 * (4 // 2) * 27


def test_gram_kan_layer_counts_base_and_basis_convs_and_basis_ops(monkeypatch):
    layer = create_kan_conv("gram", 2, 4, 6, 3, padding=1, degree=3)
    out = 6 * 8 * 8
    monkeypatch.setenv("KANSEG_KERNELS", "eager")  # the reference computation
    assert measure_complexity(layer, (4, 8, 8)).conv_macs == out * 4 * 9 + out * 4 * (3 + 1) * 9  # base + 4 maps
    monkeypatch.setenv("KANSEG_KERNELS", "auto")  # the lean layout: p_0 = 1 folded into a ones-conv of one channel
    c = measure_complexity(layer, (4, 8, 8))
    assert c.conv_macs == out * 4 * 9 + out * 4 * 3 * 9 + out * 1 * 9
    assert c.kan_ops > 4 * (3 + 1) * 8 * 8  # at least one op per basis value
    assert c.other_ops == 0
    assert c.params == count_parameters(layer)


def test_kan_work_is_booked_by_layer_type_not_by_module_name():
    class Wrapped(nn.Module):  # defined outside kanseg.kan, holds a KAN layer and a plain SiLU
        def __init__(self):
            super().__init__()
            self.kan = create_kan_conv("gram", 2, 4, 4, 3, padding=1)
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(self.kan(x))

    layer_only = measure_complexity(Wrapped().kan, (4, 8, 8))
    c = measure_complexity(Wrapped(), (4, 8, 8))
    assert c.kan_ops == layer_only.kan_ops > 0
    assert c.other_ops == 4 * 8 * 8  # the outer SiLU only


def test_flops_scale_with_image_area_and_model_is_left_alone():
    model = create_model("unet-conv", depth=3, base_width=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = measure_complexity(model, (3, 32, 32))
    large = measure_complexity(model, (3, 64, 64))
    assert large.conv_macs == 4 * small.conv_macs
    assert model.training
    for k, v in model.state_dict().items():
        assert not isinstance(v, torch._subclasses.FakeTensor)
        torch.testing.assert_close(v, before[k])


def test_kan_model_at_96_cubed_is_counted_without_computing():
    model = create_model("unet-gram", spatial_dims=3, in_channels=1, depth=3, base_width=8)
    start = time.perf_counter()
    c = measure_complexity(model, (1, 96, 96, 96))
    assert time.perf_counter() - start < 20
    assert c.kan_ops > 0 and c.conv_macs > 1e9
