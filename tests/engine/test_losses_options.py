"""The MONAI losses by name (DiceFocal, Tversky), class / positive weights and deep-supervision weights, each
against the MONAI / torch calls written out by hand."""

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, FocalLoss

from kanseg.config import load_config
from kanseg.engine.losses import build_loss, deep_supervision_weights
from kanseg.engine.setup import build_loss_for
from kanseg.errors import KansegError

S = 1e-5  # smooth_nr = smooth_dr


def _data(shape, seed=0):
    """Logits (B, C, *S) and targets (B, 1, *S): {0, 1} for one channel, class indices for several."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g)
    k = shape[1]
    target = (torch.rand((shape[0], 1, *shape[2:]), generator=g) > 0.6) if k == 1 else \
        torch.randint(0, k, (shape[0], 1, *shape[2:]), generator=g)
    return logits, target.float()


def _one_hot(target, k):
    return F.one_hot(target[:, 0].long(), k).movedim(-1, 1).float()


def _tversky(p, t, alpha, beta):
    """1 - mean over samples and channels of (TP + s) / (TP + alpha FP + beta FN + s)."""
    dims = tuple(range(2, p.ndim))
    tp, fp, fn = (p * t).sum(dims), (p * (1 - t)).sum(dims), ((1 - p) * t).sum(dims)
    return 1 - ((tp + S) / (tp + alpha * fp + beta * fn + S)).mean()


SHAPES = [(2, 1, 9, 7), (2, 1, 5, 6, 7), (2, 3, 9, 7), (2, 4, 5, 6, 7)]
IDS = ["binary-2d", "binary-3d", "3-class-2d", "4-class-3d"]


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("alpha,beta", [(0.3, 0.7), (0.5, 0.5)])
def test_tversky_matches_its_formula(shape, alpha, beta):
    logits, target = _data(shape)
    k = shape[1]
    loss = build_loss("tversky", tversky_alpha=alpha, tversky_beta=beta)(logits, target)
    if k == 1:
        expected = _tversky(torch.sigmoid(logits), target, alpha, beta)
    else:  # softmax, background left out
        expected = _tversky(torch.softmax(logits, 1)[:, 1:], _one_hot(target, k)[:, 1:], alpha, beta)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    if alpha == beta == 0.5:  # Tversky 0.5 / 0.5 is the Dice loss
        assert loss.item() == pytest.approx(build_loss("dice")(logits, target).item(), rel=1e-5)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_dice_focal_is_monai_dice_plus_focal(shape, weighted):
    logits, target = _data(shape, seed=1)
    k = shape[1]
    weights = [0.2, 1.0, 3.0, 0.5][:k] if weighted and k > 1 else None
    loss = build_loss("dice-focal", 0.7, 0.4, focal_gamma=1.5, class_weights=weights)(logits, target)
    if k == 1:
        dice = DiceLoss(sigmoid=True, smooth_nr=S, smooth_dr=S)(logits, target)
        focal = FocalLoss(gamma=1.5)(logits, target)
    else:
        onehot, w = _one_hot(target, k), None if weights is None else torch.tensor(weights[1:])
        dice = DiceLoss(softmax=True, include_background=False, smooth_nr=S, smooth_dr=S, weight=w)(logits, onehot)
        focal = FocalLoss(include_background=False, gamma=1.5, weight=w)(logits, onehot)
    assert loss.item() == pytest.approx((0.7 * dice + 0.4 * focal).item(), rel=1e-5)


def test_binary_pos_weight_weighs_positive_pixels_of_the_bce():
    logits, target = _data((3, 1, 8, 9), seed=2)
    pw = torch.tensor([4.0])
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)
    assert build_loss("bce", pos_weight=4.0)(logits, target).item() == pytest.approx(bce.item(), rel=1e-6)
    dice = DiceLoss(sigmoid=True, smooth_nr=S, smooth_dr=S)(logits, target)
    combined = build_loss("dice-bce", 1.0, 0.5, pos_weight=4.0)(logits, target)
    assert combined.item() == pytest.approx((dice + 0.5 * bce).item(), rel=1e-6)
    assert combined.item() != pytest.approx(build_loss("dice-bce", 1.0, 0.5)(logits, target).item())


@pytest.mark.parametrize("include_background", [False, True])
def test_multiclass_class_weights(include_background):
    logits, target = _data((2, 3, 7, 8), seed=3)
    weights = [0.1, 1.0, 2.5]
    ce = F.cross_entropy(logits, target[:, 0].long(), weight=torch.tensor(weights))
    assert build_loss("bce", class_weights=weights)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)
    dice_w = torch.tensor(weights if include_background else weights[1:])
    dice = DiceLoss(softmax=True, include_background=include_background, smooth_nr=S, smooth_dr=S,
                    weight=dice_w)(logits, _one_hot(target, 3))
    loss = build_loss("dice-bce", 1.0, 0.5, include_background=include_background, class_weights=weights)
    assert loss(logits, target).item() == pytest.approx((dice + 0.5 * ce).item(), rel=1e-5)
    alone = build_loss("dice", include_background=include_background, class_weights=weights)(logits, target)
    assert alone.item() == pytest.approx(dice.item(), rel=1e-5)


@pytest.mark.parametrize("count,scheme,skip,expected", [
    (1, "decay", True, [1.0]),
    (3, "mean", False, [1 / 3, 1 / 3, 1 / 3]),
    (3, "mean", True, [1 / 2, 1 / 2, 0.0]),
    (4, "decay", False, [8 / 15, 4 / 15, 2 / 15, 1 / 15]),
    (4, "decay", True, [4 / 7, 2 / 7, 1 / 7, 0.0]),  # nnU-Net
])
def test_deep_supervision_weights(count, scheme, skip, expected):
    assert deep_supervision_weights(count, scheme, skip) == pytest.approx(expected)


def test_deep_supervision_list_weighted_by_depth():
    logits, target = _data((2, 1, 8, 8), seed=4)
    outputs = [logits, logits[..., ::2, ::2] * 0.5, logits[..., ::4, ::4] - 1]
    targets = [target, target[..., ::2, ::2], target[..., ::4, ::4]]
    single = build_loss("dice-bce")
    terms = [single(o, t) for o, t in zip(outputs, targets)]
    decay = build_loss("dice-bce", deep_supervision="decay", skip_lowest=True)(outputs, targets[0])
    assert decay.item() == pytest.approx((2 / 3 * terms[0] + 1 / 3 * terms[1]).item(), rel=1e-6)
    mean = build_loss("dice-bce")(outputs, targets[0])
    assert mean.item() == pytest.approx(sum(terms).item() / 3, rel=1e-6)


def test_weights_that_do_not_fit_are_one_line_errors():
    with pytest.raises(ValueError, match="pos_weight weighs a binary cross entropy; loss 'tversky' has none"):
        build_loss("tversky", pos_weight=2.0)
    with pytest.raises(ValueError, match="class_weights are not supported by loss 'tversky'"):
        build_loss("tversky", class_weights=[1, 2])
    with pytest.raises(ValueError, match="valid: mean, decay"):
        build_loss("dice", deep_supervision="linear")
    cfg = load_config(None, {"loss.class_weights": [1, 2, 3]})
    with pytest.raises(KansegError, match="loss.class_weights has 3 values; this model has 2 classes"):
        build_loss_for(cfg, 2)
    with pytest.raises(KansegError, match=r"binary data \(use loss.pos_weight\)"):
        build_loss_for(cfg, 1)
    with pytest.raises(KansegError, match="loss.pos_weight is for binary data"):
        build_loss_for(load_config(None, {"loss.pos_weight": 3.0}), 4)
    with pytest.raises(KansegError, match="loss: pos_weight weighs"):
        build_loss_for(load_config(None, {"loss.pos_weight": 3.0, "loss.name": "dice"}), 1)
