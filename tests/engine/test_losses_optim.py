"""Losses (MONAI), KAN parameter groups, optimiser and schedule."""

import math

import pytest
import torch

from kanseg.engine.losses import build_loss
from kanseg.engine.optim import build_optimizer, build_scheduler, kan_parameter_names
from kanseg.kan import KANConv
from kanseg.models import create_model


def _ukan_bce_dice(logits, target, smooth=1e-5):
    """U-KAN's BCEDiceLoss written out: 0.5 * BCE + (1 - mean per-sample soft Dice)."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return 0.5 * bce + 1 - dice.mean()


def test_dice_bce_equals_ukan_loss_2d_and_3d():
    g = torch.Generator().manual_seed(0)
    for shape in [(3, 1, 9, 7), (2, 1, 5, 6, 7)]:
        logits = torch.randn(shape, generator=g)
        target = (torch.rand(shape, generator=g) > 0.6).float()
        assert build_loss("dice-bce", 1.0, 0.5)(logits, target).item() == pytest.approx(
            _ukan_bce_dice(logits, target).item(), rel=1e-5)


def test_deep_supervision_list_is_averaged_with_resized_target():
    loss = build_loss("bce")
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 1
    full, half = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 4, 4)
    small_target = target[..., ::2, ::2]
    expected = (loss(full, target) + loss(half, small_target)) / 2
    assert loss([full, half], target).item() == pytest.approx(expected.item())


def test_unknown_loss_lists_valid():
    with pytest.raises(ValueError, match="valid: dice-bce, dice, bce"):
        build_loss("focal")


@pytest.fixture(scope="module")
def kan_model():
    return create_model("unet-gram", spatial_dims=2, in_channels=1, out_channels=1, base_width=4, depth=2)


def test_kan_parameter_scopes(kan_model):
    names = dict(kan_model.named_parameters())
    layer = kan_parameter_names(kan_model, "kan-layer")
    basis = kan_parameter_names(kan_model, "basis")
    assert basis and basis < layer < set(names)
    assert all(".basis." in n for n in basis)
    assert any(n.endswith("basis_conv.weight") for n in layer) and not any("basis_conv" in n for n in basis)
    prefixes = tuple(f"{n}." for n, m in kan_model.named_modules() if isinstance(m, KANConv))
    assert prefixes and layer == {n for n in names if n.startswith(prefixes)}
    assert kan_parameter_names(create_model("unet-conv", base_width=4, depth=2)) == set()
    with pytest.raises(ValueError, match="valid: kan-layer, basis"):
        kan_parameter_names(kan_model, "everything")


@pytest.mark.parametrize("encoder, has_kan", [("kanseg-conv", False), ("kanseg-gram", True)])
def test_smp_encoder_gets_the_kan_lr_only_for_kan_layers(encoder, has_kan):
    """Groups go by layer type: the plain-conv smp encoder (class ``KANEncoder``) has no KAN parameter."""
    import segmentation_models_pytorch as smp

    import kanseg.models.smp_encoders  # noqa: F401  (registers the encoders)

    model = smp.Unet(encoder, encoder_weights=None, in_channels=1, classes=1, encoder_depth=2,
                     decoder_channels=(8, 4))
    kan = kan_parameter_names(model)
    prefixes = tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, KANConv))
    assert kan == {n for n, _ in model.named_parameters() if n.startswith(prefixes)}
    assert bool(kan) == has_kan
    groups = [g["name"] for g in build_optimizer(model, lr=1e-4, kan_lr=1e-2).param_groups]
    assert groups == (["kan", "other"] if has_kan else ["other"])


def test_optimizer_groups_get_their_lr(kan_model):
    opt = build_optimizer(kan_model, "adamw", lr=1e-4, weight_decay=1e-4, kan_lr=1e-2, kan_weight_decay=0.0)
    groups = {g["name"]: g for g in opt.param_groups}
    assert isinstance(opt, torch.optim.AdamW)
    assert groups["kan"]["lr"] == 1e-2 and groups["other"]["lr"] == 1e-4 and groups["kan"]["weight_decay"] == 0.0
    kan_ids = {id(p) for p in groups["kan"]["params"]}
    named = dict(kan_model.named_parameters())
    assert kan_ids == {id(named[n]) for n in kan_parameter_names(kan_model)}
    total = sum(len(g["params"]) for g in opt.param_groups)
    assert total == len(named)
    single = build_optimizer(kan_model, "adam", lr=3e-4)
    assert len(single.param_groups) == 1 and single.param_groups[0]["lr"] == 3e-4


def test_cosine_schedule_anneals_each_group_to_min_lr(kan_model):
    opt = build_optimizer(kan_model, lr=1e-4, kan_lr=1e-2)
    sched = build_scheduler(opt, epochs=4, name="cosine", min_lr=1e-5)
    lrs = []
    for _ in range(4):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    kan0, other0 = lrs[0]
    assert (kan0, other0) == (1e-2, 1e-4)
    # epoch 2 of 4: halfway down the cosine
    assert lrs[2][0] == pytest.approx(1e-5 + (1e-2 - 1e-5) * (1 + math.cos(math.pi * 2 / 4)) / 2)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-5, 1e-5])
    flat_opt = build_optimizer(kan_model, lr=1e-3)
    flat = build_scheduler(flat_opt, epochs=3, name="none")
    flat_opt.step()
    flat.step()
    assert flat.get_last_lr() == [1e-3]
