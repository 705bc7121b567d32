import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch")
from kanseg.models import list_blocks  # noqa: E402
from kanseg.models.smp_encoders import KANEncoder, SMP_ENCODERS, smp_encoder_name  # noqa: E402

SMALL = dict(encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 4))


def test_every_block_is_registered():
    assert SMP_ENCODERS == [smp_encoder_name(b) for b in list_blocks()]
    assert {"kanseg-conv", "kanseg-gram", "kanseg-gram-bottleneck"} <= set(smp.encoders.get_encoder_names())


@pytest.mark.parametrize("arch", ["Unet", "UnetPlusPlus"])
@pytest.mark.parametrize("encoder, in_channels", [("kanseg-gram", 1), ("kanseg-chebyshev-bottleneck", 4)])
def test_smp_models_on_kan_encoders(arch, encoder, in_channels):
    torch.manual_seed(0)
    model = getattr(smp, arch)(encoder, in_channels=in_channels, classes=2, **SMALL)
    assert isinstance(model.encoder, KANEncoder)
    assert model.encoder.out_channels == [in_channels, 16, 32, 64]
    x = torch.randn(2, in_channels, 32, 40)
    y = model(x)
    assert y.shape == (2, 2, 32, 40)
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_encoder_features_follow_smp_convention():
    encoder = smp.encoders.get_encoder("kanseg-conv", in_channels=2, depth=4)
    features = encoder(torch.randn(1, 2, 32, 32))
    assert [tuple(f.shape[1:]) for f in features] == [(2, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4),
                                                      (128, 2, 2)]


def test_no_pretrained_weights_and_no_dilation():
    with pytest.raises(KeyError, match="Available options are: \\[\\]"):
        smp.Unet("kanseg-gram", encoder_weights="imagenet")
    with pytest.raises(ValueError, match="does not support dilated mode"):
        smp.DeepLabV3("kanseg-conv", encoder_weights=None, encoder_output_stride=8)
