"""apply_peft / fuse_peft on whole kanseg models (templates, smp encoders): identity, fuse equality, what is left,
state dicts, bad input."""

import pytest
import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.kan import KANConv
from kanseg.kan.peft import (
    PEFTKANConv,
    apply_peft,
    check_plain_state_dict,
    count_parameters,
    fuse_peft,
    peft_layers,
    peft_options,
)
from kanseg.models import create_model

TINY = {"depth": 2, "base_width": 4, "in_channels": 1, "out_channels": 2}


def _randomise_new(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rpartition(".")[2] in ("extra_weight", "delta_weight"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("_coefficients"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def _check_model(model, x, **options):
    """In float64: the layer-level checks (test_peft.py) are fp32; across a whole model fp32 rounding compounds
    (InstanceNorm over 2×2×2 voxels at the bottom of a 3D U-Net amplifies it)."""
    model, x = model.double(), x.double()
    with torch.no_grad():
        y_plain = model(x)
        report = apply_peft(model, **options)
        assert report.wrapped and all(isinstance(model.get_submodule(n), PEFTKANConv) for n in report.wrapped)
        assert (model(x) - y_plain).abs().max() <= 1e-6 * y_plain.abs().max()
        _randomise_new(model)
        y_peft = model(x)
        assert fuse_peft(model) is model and not peft_layers(model)
        assert all(model.get_submodule(n).basis.degree == 3 + options.get("extra_degrees", 1) for n in report.wrapped)
        y_fused = model(x)
    assert (y_fused - y_peft).abs().max() <= 1e-5 * (1 + y_peft.abs().max())
    return report


@pytest.mark.parametrize("name, nd", [("unet-gram", 2), ("unet-chebyshev", 3), ("unet-gram-bottleneck", 2),
                                      ("unetpp-gram", 2), ("attunet-gram", 2)])
def test_templates(name, nd):
    torch.manual_seed(0)
    model = create_model(name, spatial_dims=nd, **TINY).eval()
    x = torch.randn(1, 1, *(8,) * nd)
    report = _check_model(model, x, extra_degrees=1, trainable_degrees=[3])
    assert len(report.wrapped) == sum(isinstance(m, KANConv) for m in model.modules()) and not report.left


def test_mixed_model_lists_what_it_left():
    torch.manual_seed(0)
    model = create_model("unet-gram", spatial_dims=2, decoder_block="kan:rbf", **TINY).eval()
    report = _check_model(model, torch.randn(1, 1, 8, 8), extra_degrees=2)
    assert report.left and all("rbf" in why for why in report.left.values())
    assert all(isinstance(model.get_submodule(n), KANConv) and model.get_submodule(n).family == "rbf"
               for n in report.left)
    assert "left" in str(report)


def test_smp_encoder():
    smp = pytest.importorskip("segmentation_models_pytorch")
    import kanseg.models.smp_encoders  # noqa: F401  (registers the kanseg-<family> encoders)
    torch.manual_seed(0)
    model = smp.Unet("kanseg-gram", encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 4),
                     in_channels=1, classes=2).eval()
    report = _check_model(model, torch.randn(1, 1, 16, 16), extra_degrees=1)
    assert all(n.startswith("encoder.") for n in report.wrapped)


def test_trainable_counts_and_state_dict_round_trip():
    torch.manual_seed(0)
    model = create_model("unet-gram", spatial_dims=2, **TINY)
    before = count_parameters(model)
    apply_peft(model, extra_degrees=1, trainable_degrees=[2, 3], freeze_norm=True)
    after = count_parameters(model)
    assert after["trainable"] + after["frozen"] > before["trainable"] and after["frozen"] > after["trainable"] > 0
    assert peft_options(model) == {"extra_degrees": 1, "trainable_degrees": [2, 3], "finetune_base": False,
                                   "freeze_norm": True}
    _randomise_new(model)
    model.train()  # freeze_norm keeps the norms of wrapped layers in eval mode
    assert all(not m.conv.norm.training for m in peft_layers(model).values())
    state = model.state_dict()
    assert not any("delta_index" in k for k in state)

    rebuilt = create_model("unet-gram", spatial_dims=2, **TINY)
    apply_peft(rebuilt, **peft_options(model))
    rebuilt.load_state_dict(state)
    x = torch.randn(1, 1, 8, 8)
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))
    with pytest.raises(KansegError, match="PEFT-wrapped model, this model is plain"):
        check_plain_state_dict(state, create_model("unet-gram", spatial_dims=2, **TINY))
    check_plain_state_dict(state, rebuilt)


def test_bad_input_one_line():
    with pytest.raises(KansegError, match="has no KAN convolution layers") as err:
        apply_peft(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    assert "\n" not in str(err.value)
    with pytest.raises(KansegError, match="none of the .* KAN convs can be wrapped .*rbf"):
        apply_peft(create_model("unet-rbf", spatial_dims=2, **TINY))
    with pytest.raises(KansegError, match="is not PEFT-wrapped"):
        fuse_peft(create_model("unet-gram", spatial_dims=2, **TINY))
    model = create_model("unet-gram", spatial_dims=2, **TINY)
    with pytest.raises(KansegError, match=r"trainable_degrees \[5\] outside the valid range 2..3 for layer"):
        apply_peft(model, trainable_degrees=[5])
    assert not peft_layers(model)  # a bad option leaves the model untouched
    apply_peft(model)
    with pytest.raises(KansegError, match="already PEFT-wrapped"):
        apply_peft(model)
