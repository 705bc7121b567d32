"""KAN mixers inside the templates: after the bottleneck (``mixer``), in every decoder stage (``decoder_mixer``)."""

import pytest
import torch

from kanseg.errors import KansegError
from kanseg.kan.mixers import KANFocalModulation, KANSelfAttention
from kanseg.models import UNet, UNetPlusPlus, create_model, list_models
from kanseg.models.mixers import MixedBlock

from .tester import TINY, ModelTester


class TestUNetGramAttention(ModelTester):
    template = UNet
    preset = "unet-gram-attention"


class TestUNetGramDecoderFocal(ModelTester):
    template = UNet
    preset = "unet-gram-decoder-focal"

    def test_kan_encoder_conv_decoder(self):
        # The decoder mixers stay KAN (by design); a conv decoder block means conv layers after each mixer.
        from kanseg.kan import KANConv

        model = self.build(encoder_block="kan:gram", decoder_block="conv")
        assert not any(isinstance(m, KANConv) for b in model.decoder.blocks for m in b.block.modules())
        assert all(isinstance(b.mixer, KANFocalModulation) for b in model.decoder.blocks)
        assert model(torch.randn(2, 3, 20, 21)).shape == (2, 1, 20, 21)


def test_presets_registered():
    assert {"unet-gram-attention", "unet-gram-focal", "unet-gram-decoder-focal"} <= set(list_models())


@pytest.mark.parametrize("mixer, cls", [("kan-attention", KANSelfAttention), ("kan-focal", KANFocalModulation)])
def test_mixer_after_the_bottleneck_gets_the_deepest_width(mixer, cls):
    model = create_model("unet-gram", **TINY, mixer=mixer, mixer_options={"family": "chebyshev", "degree": 2})
    assert isinstance(model.mixer, cls) and model.mixer.channels == model.widths[-1]
    assert model(torch.randn(2, 3, 19, 22)).shape == (2, 1, 19, 22)


def test_decoder_mixer_runs_on_the_concatenated_channels():
    model = create_model("unet-gram", **TINY, decoder_mixer="kan-focal")
    widths = model.widths
    assert all(isinstance(b, MixedBlock) for b in model.decoder.blocks)
    assert [b.mixer.channels for b in model.decoder.blocks] == [widths[2] + widths[1], widths[1] + widths[0]]
    assert model.mixer is None


def test_decoder_mixer_in_unetpp_3d():
    model = create_model("unetpp-gram", **TINY, spatial_dims=3, in_channels=1, decoder_mixer="kan-attention",
                         mixer_options={"inner_channels": 4, "family": "gram-bottleneck"})
    assert type(model) is UNetPlusPlus
    x = torch.randn(2, 1, 9, 10, 11)
    y = model(x)
    assert y.shape == (2, 1, 9, 10, 11)
    y.mean().backward()


def test_no_mixer_leaves_the_state_dict_unchanged():
    plain = create_model("unet-gram", **TINY).state_dict()
    assert not any("mixer" in k for k in plain)
    assert set(create_model("unet-gram", **TINY, mixer="none").state_dict()) == set(plain)


def test_mixer_options_merge_over_the_preset():
    model = create_model("unet-gram-focal", **TINY, mixer_options={"focal_level": 3})
    assert len(model.mixer.focal_layers) == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"mixer": "attention"}, r"unknown mixer 'attention'; valid: none, kan-attention, kan-focal"),
    ({"decoder_mixer": "kan-focal", "mixer_options": {"focal_factor": 1}}, r"mixer 'kan-focal': focal kernel"),
    ({"mixer": "kan-attention", "mixer_options": {"kernel_size": 2}}, r"kernel_size must be an odd"),
    ({"mixer": "kan-attention", "mixer_options": {"bogus": 1}}, r"mixer 'kan-attention'.*bogus"),
])
def test_bad_mixer_config_is_a_one_line_error(kwargs, match):
    with pytest.raises(KansegError, match=match) as info:
        create_model("unet-gram", **TINY, **kwargs)
    assert "\n" not in str(info.value)


def test_attention_at_a_too_fine_level_names_the_size():
    model = create_model("unet-gram", **TINY, decoder_mixer="kan-attention", mixer_options={"max_positions": 64})
    with pytest.raises(ValueError, match=r"positions exceeds max_positions 64"):
        model(torch.randn(2, 3, 16, 16))


def test_models_table_names_the_mixer():
    from kanseg.models import get_preset

    assert get_preset("unet-gram-attention").blocks == "kan:gram + kan-attention"
    assert get_preset("unet-gram").blocks == "kan:gram"
