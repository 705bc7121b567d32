"""Segmentation losses by name (MONAI), applied to one logit map or a deep-supervision list.

Binary tasks (one output channel): logits (B, 1, *S), targets (B, 1, *S) in {0, 1}.
``dice-bce`` is the U-KAN loss: ``bce_weight · BCE + dice_weight · soft Dice`` (per-sample Dice,
smooth 1e-5, averaged over the batch).

Multi-class tasks (K > 1 output channels): logits (B, K, *S), targets (B, 1, *S) of class indices
0..K-1. ``dice-bce`` is then MONAI's DiceCE with softmax (``dice_weight · Dice + bce_weight · cross
entropy``), ``dice`` the softmax Dice and ``bce`` the cross entropy; the Dice term leaves the
background channel out unless ``include_background``. The number of logit channels picks the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from torch import nn

SMOOTH = 1e-5

LOSSES: dict[str, Callable[[float, float], nn.Module]] = {
    "dice-bce": lambda dice_w, bce_w: DiceCELoss(
        sigmoid=True, lambda_dice=dice_w, lambda_ce=bce_w, smooth_nr=SMOOTH, smooth_dr=SMOOTH
    ),
    "dice": lambda dice_w, bce_w: DiceLoss(sigmoid=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH),
    "bce": lambda dice_w, bce_w: nn.BCEWithLogitsLoss(),
}


class CrossEntropy(nn.Module):
    """Cross entropy of logits (B, K, *S) against class indices (B, 1, *S)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target[:, 0].long())


MULTICLASS_LOSSES: dict[str, Callable[[float, float, bool], nn.Module]] = {
    "dice-bce": lambda dice_w, bce_w, bg: DiceCELoss(
        softmax=True, to_onehot_y=True, include_background=bg, lambda_dice=dice_w, lambda_ce=bce_w,
        smooth_nr=SMOOTH, smooth_dr=SMOOTH,
    ),
    "dice": lambda dice_w, bce_w, bg: DiceLoss(
        softmax=True, to_onehot_y=True, include_background=bg, smooth_nr=SMOOTH, smooth_dr=SMOOTH
    ),
    "bce": lambda dice_w, bce_w, bg: CrossEntropy(),
}


class SegmentationLoss(nn.Module):
    """Wraps a criterion so a list of logits (deep supervision, first = final) is averaged.

    Each extra output whose size differs from the target gets the target resized (nearest, so class
    indices stay indices). ``multiclass`` (optional) scores outputs with more than one channel.
    """

    def __init__(self, criterion: nn.Module, multiclass: nn.Module | None = None):
        super().__init__()
        self.criterion = criterion
        self.multiclass = multiclass

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        outputs = [logits] if isinstance(logits, torch.Tensor) else list(logits)
        terms = []
        for out in outputs:
            tgt = target if out.shape[2:] == target.shape[2:] else F.interpolate(target, size=out.shape[2:])
            criterion = self.criterion
            if out.shape[1] > 1:
                if self.multiclass is None:
                    raise ValueError(f"this loss is binary (one channel); got logits with {out.shape[1]} channels")
                criterion = self.multiclass
            terms.append(criterion(out.float(), tgt.float()))
        return torch.stack(terms).mean()


def build_loss(name: str = "dice-bce", dice_weight: float = 1.0, bce_weight: float = 0.5, *,
               include_background: bool = False) -> SegmentationLoss:
    """The loss registered as ``name`` (one of :data:`LOSSES`), for one-channel (binary) and
    several-channel (multi-class, background in the Dice term only when ``include_background``) logits."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    return SegmentationLoss(LOSSES[name](dice_weight, bce_weight),
                            MULTICLASS_LOSSES[name](dice_weight, bce_weight, include_background))
