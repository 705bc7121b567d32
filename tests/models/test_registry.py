import inspect

import pytest
import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.kan import KANConv, list_families
from kanseg.models import (AttentionUNet, ModelConfigError, UNet, UNetPlusPlus, create_model,
                           get_preset, list_models)

REQUIRED = ["unet-conv", "unet-gram", "unet-gram-bottleneck", "unetpp-gram", "attunet-gram", "ukagnet"]


def test_required_presets_and_patterns():
    names = list_models()
    assert set(REQUIRED) <= set(names) and names == sorted(names)
    assert {f"unet-{f}" for f in list_families()} <= set(names)
    assert list_models("ukagnet*") == ["ukagnet", "ukagnet-bottleneck"]
    assert all(n.startswith("unetpp-") for n in list_models("unetpp-*")) and list_models("unetpp-*")
    assert list_models("nothing*") == []


def _takes_template_arguments(name: str) -> bool:
    """Presets sized by kanseg's ``depth``/``base_width`` (the KAN templates, KANDynUNet); the baselines take MONAI's
    or smp's own arguments and are tested in tests/models/test_baselines.py."""
    return "base_width" in inspect.signature(get_preset(name).template).parameters


@pytest.mark.parametrize("name", [n for n in list_models() if _takes_template_arguments(n)])
def test_every_preset_builds_and_runs_tiny(name):
    model = create_model(name, depth=3, base_width=4, in_channels=1, out_channels=2).eval()  # DynUNet: depth >= 3
    assert model(torch.randn(1, 1, 13, 10)).shape == (1, 2, 13, 10)


def test_templates_of_presets():
    assert type(create_model("unet-gram", depth=2, base_width=4)) is UNet
    assert type(create_model("unetpp-gram", depth=2, base_width=4)) is UNetPlusPlus
    assert type(create_model("attunet-gram", depth=2, base_width=4)) is AttentionUNet


def _ukagnet_reference_count(in_channels=3, out_channels=1, degree=3, widths=(16, 32, 64, 128, 256)):
    """Parameters of torch-conv-kan's UKAGNet(unet_depth=5, unet_layers=2, use_bottleneck=False), by hand:
    a KAGN 3x3 layer I->O has (D+2)*I*O*9 conv weights, D+1 betas and 2*O BatchNorm affine parameters."""
    def kagn(i, o):
        return (degree + 2) * i * o * 9 + (degree + 1) + 2 * o

    encoder = sum(kagn(i, o) + kagn(o, o) for i, o in zip((in_channels,) + widths[:-1], widths))
    decoder = sum(kagn(widths[d + 1] + widths[d], widths[d]) + kagn(widths[d], widths[d]) for d in range(4))
    head = widths[0] * out_channels + out_channels
    return encoder + decoder + head


def test_ukagnet_parameter_count_matches_the_paper():
    model = create_model("ukagnet")
    n = sum(p.numel() for p in model.parameters())
    assert n == _ukagnet_reference_count() == 9_808_713
    assert round(n / 1e6, 2) == 9.81
    assert model.widths == [16, 32, 64, 128, 256]
    kan_layers = [m for m in model.modules() if isinstance(m, KANConv)]
    assert len(kan_layers) == 18  # 5 encoder + 4 decoder levels, 2 convs each
    assert all(any(isinstance(n, nn.BatchNorm2d) for n in m.modules()) for m in kan_layers)
    assert all(isinstance(level.layers[0], KANConv) for level in model.encoder.levels)  # strided conv, no pool
    with torch.no_grad():
        features = model.encoder.eval()(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in features] == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (128, 4, 4),
                                                      (256, 2, 2)]


def test_ukagnet_3d_and_bottleneck_are_smaller_or_larger_as_expected():
    n2 = sum(p.numel() for p in create_model("ukagnet").parameters())
    n3 = sum(p.numel() for p in create_model("ukagnet", spatial_dims=3).parameters())
    nb = sum(p.numel() for p in create_model("ukagnet-bottleneck").parameters())
    assert 2.9 < n3 / n2 < 3.0  # 27/9 for the 3x3(x3) kernels, less for norms and head
    assert nb < n2 / 2


def test_overrides_replace_and_option_dicts_merge():
    model = create_model("ukagnet", depth=2, base_width=4, block_options={"dropout": 0.1})
    layer = next(m for m in model.modules() if isinstance(m, KANConv))
    assert any(isinstance(n, nn.BatchNorm2d) for n in layer.modules())  # kept from the preset
    assert any(isinstance(n, nn.Dropout2d) and n.p == 0.1 for n in model.modules())
    assert get_preset("ukagnet").defaults["block_options"] == {"norm": "batch"}  # preset untouched


def test_unknown_model_lists_valid_names():
    with pytest.raises(KansegError, match=r"unknown model 'unet-foo'; valid: attunet-gram, .*ukagnet"):
        create_model("unet-foo")


def test_unknown_override_lists_valid_options():
    with pytest.raises(ModelConfigError, match=r"unknown option\(s\) \['channels'\] for model 'unet-gram'; "
                                               r"valid: spatial_dims, in_channels, out_channels, widths"):
        create_model("unet-gram", channels=3)


@pytest.mark.parametrize("overrides, message", [
    (dict(spatial_dims=4), r"spatial_dims must be 1, 2 or 3"),
    (dict(widths=[]), r"widths must be a non-empty list"),
    (dict(widths=[4, 0]), r"widths must be a non-empty list of positive integers"),
    (dict(depth=0), r"depth must be an integer >= 1"),
    (dict(depth=3, widths=[4, 8]), r"depth 3 does not match widths"),
    (dict(out_channels=0), r"in_channels and out_channels must be >= 1"),
    (dict(deep_supervision=True), r"deep_supervision is not available for UNet"),
    (dict(upsample="cubic"), r"unknown upsample mode 'cubic'; valid: linear, nearest, transpose"),
    (dict(downsample="conv"), r"unknown downsample 'conv'; valid: maxpool, avgpool, stride"),
    (dict(encoder_block="kan:nope"), r"unknown block 'kan:nope'; valid: conv, kan:"),
    (dict(decoder_block="conv", decoder_block_options={"degree": 2}), r"unknown option\(s\) \['degree'\]"),
])
def test_bad_model_configs_are_one_line_errors(overrides, message):
    with pytest.raises(ModelConfigError, match=message) as info:
        create_model("unet-gram", **{"base_width": 4, "depth": 2, **overrides})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("upsample", ["nearest", "transpose", "trilinear"])
@pytest.mark.parametrize("downsample", ["maxpool", "avgpool"])
def test_sampling_modes_3d(upsample, downsample):
    model = create_model("unet-conv", spatial_dims=3, in_channels=1, depth=3, base_width=2, upsample=upsample,
                         downsample=downsample)
    assert model(torch.randn(1, 1, 9, 10, 11)).shape == (1, 1, 9, 10, 11)

