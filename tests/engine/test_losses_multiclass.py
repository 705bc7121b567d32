"""Multi-class losses: softmax DiceCE against a hand-written formula, gradients, deep supervision."""

import pytest
import torch
import torch.nn.functional as F

from kanseg.engine.losses import build_loss


def _dice_ce(logits, target, include_background=False, dice_w=1.0, ce_w=0.5, smooth=1e-5):
    """nnU-Net / MONAI style: per-sample, per-class soft Dice of the softmax, mean over both; plus CE."""
    k = logits.shape[1]
    p = torch.softmax(logits, 1)
    t = F.one_hot(target[:, 0].long(), k).movedim(-1, 1).float()
    if not include_background:
        p, t = p[:, 1:], t[:, 1:]
    dims = tuple(range(2, logits.ndim))
    dice = (2 * (p * t).sum(dims) + smooth) / (p.sum(dims) + t.sum(dims) + smooth)
    return dice_w * (1 - dice.mean()) + ce_w * F.cross_entropy(logits, target[:, 0].long())


@pytest.mark.parametrize("shape", [(2, 3, 9, 7), (2, 4, 5, 6, 7)], ids=["2d", "3d"])
@pytest.mark.parametrize("include_background", [False, True])
def test_multiclass_dice_ce_matches_formula_and_has_gradients(shape, include_background):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=g, requires_grad=True)
    target = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g).float()
    loss = build_loss("dice-bce", 1.0, 0.5, include_background=include_background)(logits, target)
    assert loss.item() == pytest.approx(_dice_ce(logits, target, include_background).item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad.abs().flatten(2).sum(-1) > 0).all()  # every class channel of every sample learns


def test_multiclass_dice_and_ce_alone_and_binary_unchanged():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 6, 6, generator=g)
    target = torch.randint(0, 3, (2, 1, 6, 6), generator=g).float()
    ce = F.cross_entropy(logits, target[:, 0].long())
    assert build_loss("bce")(logits, target).item() == pytest.approx(ce.item())
    assert build_loss("dice")(logits, target).item() == pytest.approx(
        _dice_ce(logits, target, dice_w=1.0, ce_w=0.0).item(), rel=1e-5)
    binary = torch.randn(2, 1, 6, 6, generator=g)
    assert build_loss("bce")(binary, (target > 1).float()).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(binary, (target > 1).float()).item())


def test_deep_supervision_resizes_class_indices_nearest():
    loss = build_loss("dice-bce")
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 1
    target[..., 6:, 6:] = 2
    full, half = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 4, 4)
    small = target[..., ::2, ::2]
    assert set(F.interpolate(target, size=(4, 4)).unique().tolist()) == {0.0, 1.0, 2.0}
    assert loss([full, half], target).item() == pytest.approx(((loss(full, target) + loss(half, small)) / 2).item())
