"""Segmentation losses by name (MONAI), applied to one logit map or a deep-supervision list.

Binary segmentation throughout: logits (B, 1, *S), targets (B, 1, *S) in {0, 1}.
``dice-bce`` is the U-KAN loss: ``bce_weight · BCE + dice_weight · soft Dice`` (per-sample Dice,
smooth 1e-5, averaged over the batch).
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


class SegmentationLoss(nn.Module):
    """Wraps a criterion so a list of logits (deep supervision, first = final) is averaged.

    Each extra output whose size differs from the target gets the target resized (nearest).
    """

    def __init__(self, criterion: nn.Module):
        super().__init__()
        self.criterion = criterion

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        outputs = [logits] if isinstance(logits, torch.Tensor) else list(logits)
        terms = []
        for out in outputs:
            tgt = target if out.shape[2:] == target.shape[2:] else F.interpolate(target, size=out.shape[2:])
            terms.append(self.criterion(out.float(), tgt.float()))
        return torch.stack(terms).mean()


def build_loss(name: str = "dice-bce", dice_weight: float = 1.0, bce_weight: float = 0.5) -> SegmentationLoss:
    """The loss registered as ``name`` (one of :data:`LOSSES`)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    return SegmentationLoss(LOSSES[name](dice_weight, bce_weight))
