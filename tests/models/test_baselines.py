"""Established baselines as presets (MONAI BasicUNet / DynUNet, smp Unet + ResNet), through the model tester."""

import pytest
import torch

from kanseg.errors import KansegError
from kanseg.models import create_model, list_models
from kanseg.models.baselines import MonaiBasicUNet, MonaiDynUNet, SmpUNet

from .tester import BaselineTester


class TestMonaiBasicUNet(BaselineTester):
    template = MonaiBasicUNet
    preset = "monai-basicunet"
    tiny = {"features": (4, 4, 8, 8, 16, 4)}


class TestMonaiDynUNet(BaselineTester):
    template = MonaiDynUNet
    preset = "monai-dynunet"
    tiny = {"depth": 4, "filters": (4, 8, 8, 16)}


class TestSmpUNetResNet18(BaselineTester):
    template = SmpUNet
    preset = "smp-unet-resnet18"
    tiny = {"decoder_channels": (8, 8, 8, 4, 4)}


def test_presets_registered():
    assert {"monai-basicunet", "monai-dynunet", "smp-unet-resnet18", "smp-unet-resnet34"} <= set(list_models())


@pytest.mark.parametrize("name, params", [
    ("monai-basicunet", 1_979_009),  # the BasicUNet of issue 13 (1.98 M, 3 -> 1 channels, 2D)
    ("smp-unet-resnet18", 14_328_209),
    ("smp-unet-resnet34", 24_436_369),
])
def test_default_sizes_are_the_libraries(name, params):
    model = create_model(name, spatial_dims=2, in_channels=3, out_channels=1)
    assert sum(p.numel() for p in model.parameters()) == params


def test_smp_encoders_are_randomly_initialised():
    a = create_model("smp-unet-resnet34", in_channels=1, out_channels=1)
    torch.manual_seed(1)
    b = create_model("smp-unet-resnet34", in_channels=1, out_channels=1)
    assert not torch.equal(a.net.encoder.conv1.weight, b.net.encoder.conv1.weight)


def test_dynunet_pads_to_its_depth():
    model = create_model("monai-dynunet", spatial_dims=3, in_channels=1, out_channels=2, depth=3, filters=(4, 4, 8))
    assert model.size_divisor == 4
    assert model(torch.randn(1, 1, 9, 10, 11)).shape == (1, 2, 9, 10, 11)


@pytest.mark.parametrize("name, kwargs, match", [
    ("smp-unet-resnet18", {"spatial_dims": 3}, r"SmpUNet supports spatial_dims 2 only, got 3"),
    ("smp-unet-resnet34", {"decoder_channels": (8, 4)}, r"decoder_channels must have 5 entries"),
    ("smp-unet-resnet34", {"encoder_name": "nope"}, r"SmpUNet\(nope\)"),
    ("monai-dynunet", {"depth": 3, "filters": (4, 8)}, r"must have depth=3 entries"),
    ("monai-dynunet", {"kernel_size": 2}, r"kernel_size must be odd"),
    ("monai-basicunet", {"spatial_dims": 4}, r"supports spatial_dims 1, 2, 3 only"),
    ("monai-basicunet", {"base_width": 8}, r"unknown option\(s\) \['base_width'\] for model 'monai-basicunet'"),
])
def test_bad_options_are_one_line_errors(name, kwargs, match):
    with pytest.raises(KansegError, match=match) as info:
        create_model(name, **kwargs)
    assert "\n" not in str(info.value)
