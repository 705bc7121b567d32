"""Segmentation losses by name (MONAI), applied to one logit map or a deep-supervision list.

Binary tasks (one output channel): logits (B, 1, *S), targets (B, 1, *S) in {0, 1}.
``dice-bce`` is the U-KAN loss: ``bce_weight · BCE + dice_weight · soft Dice`` (per-sample Dice,
smooth 1e-5, averaged over the batch).

Multi-class tasks (K > 1 output channels): logits (B, K, *S), targets (B, 1, *S) of class indices
0..K-1. ``dice-bce`` is then MONAI's DiceCE with softmax (``dice_weight · Dice + bce_weight · cross
entropy``), ``dice`` the softmax Dice and ``bce`` the cross entropy; the Dice term leaves the
background channel out unless ``include_background``. The number of logit channels picks the kind.

The other MONAI losses: ``dice-focal`` (``dice_weight · Dice + bce_weight · focal``, MONAI's sigmoid focal
term on the one-hot channels, ``focal_gamma``) and ``tversky`` (``tversky_alpha`` weighs false positives,
``tversky_beta`` false negatives; 0.5 / 0.5 is the Dice loss). ``pos_weight`` weighs the positive pixels of
the binary cross entropy; ``class_weights`` (K values, background first) weigh the classes of the multi-class
cross entropy / focal term and, as MONAI does, of its Dice term.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss, TverskyLoss
from torch import nn

SMOOTH = 1e-5


@dataclass(frozen=True)
class LossOptions:
    """The settings of :func:`build_loss` (see :class:`kanseg.config.LossConfig`)."""

    dice_weight: float = 1.0
    bce_weight: float = 0.5
    include_background: bool = False
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.5
    tversky_beta: float = 0.5
    class_weights: tuple[float, ...] | None = None
    pos_weight: float | None = None

    @property
    def pos(self) -> torch.Tensor | None:
        return None if self.pos_weight is None else torch.tensor([float(self.pos_weight)])

    @property
    def classes(self) -> torch.Tensor | None:
        return None if self.class_weights is None else torch.tensor(self.class_weights, dtype=torch.float32)

    @property
    def dice_classes(self) -> torch.Tensor | None:
        """Class weights of the channels a Dice term sees (background left out unless included)."""
        weights = self.classes
        return weights if weights is None or self.include_background else weights[1:]


LOSSES: dict[str, Callable[[LossOptions], nn.Module]] = {
    "dice-bce": lambda o: DiceCELoss(
        sigmoid=True, lambda_dice=o.dice_weight, lambda_ce=o.bce_weight, smooth_nr=SMOOTH, smooth_dr=SMOOTH,
        weight=o.pos,
    ),
    "dice": lambda o: DiceLoss(sigmoid=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH),
    "bce": lambda o: nn.BCEWithLogitsLoss(pos_weight=o.pos),
    "dice-focal": lambda o: DiceFocalLoss(
        sigmoid=True, gamma=o.focal_gamma, lambda_dice=o.dice_weight, lambda_focal=o.bce_weight,
        smooth_nr=SMOOTH, smooth_dr=SMOOTH,
    ),
    "tversky": lambda o: TverskyLoss(sigmoid=True, alpha=o.tversky_alpha, beta=o.tversky_beta,
                                     smooth_nr=SMOOTH, smooth_dr=SMOOTH),
}


class CrossEntropy(nn.Module):
    """Cross entropy of logits (B, K, *S) against class indices (B, 1, *S), optionally class-weighted."""

    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target[:, 0].long(), weight=self.weight)


MULTICLASS_LOSSES: dict[str, Callable[[LossOptions], nn.Module]] = {
    "dice-bce": lambda o: DiceCELoss(
        softmax=True, to_onehot_y=True, include_background=o.include_background, lambda_dice=o.dice_weight,
        lambda_ce=o.bce_weight, smooth_nr=SMOOTH, smooth_dr=SMOOTH, weight=o.classes,
    ),
    "dice": lambda o: DiceLoss(
        softmax=True, to_onehot_y=True, include_background=o.include_background, smooth_nr=SMOOTH, smooth_dr=SMOOTH,
        weight=o.dice_classes,
    ),
    "bce": lambda o: CrossEntropy(o.classes),
    "dice-focal": lambda o: DiceFocalLoss(
        softmax=True, to_onehot_y=True, include_background=o.include_background, gamma=o.focal_gamma,
        lambda_dice=o.dice_weight, lambda_focal=o.bce_weight, smooth_nr=SMOOTH, smooth_dr=SMOOTH,
        weight=o.dice_classes,
    ),
    "tversky": lambda o: TverskyLoss(
        softmax=True, to_onehot_y=True, include_background=o.include_background, alpha=o.tversky_alpha,
        beta=o.tversky_beta, smooth_nr=SMOOTH, smooth_dr=SMOOTH,
    ),
}
POS_WEIGHT_LOSSES = ("dice-bce", "bce")  # the binary losses with a cross-entropy term
CLASS_WEIGHT_LOSSES = ("dice-bce", "dice", "bce", "dice-focal")


def deep_supervision_weights(count: int, scheme: str = "mean", skip_lowest: bool = False) -> list[float]:
    """Weights of ``count`` deep-supervision outputs (final first), summing to 1.

    ``mean``: equal; ``decay`` (nnU-Net): ``1, 1/2, 1/4, ...``. ``skip_lowest`` gives the last (lowest
    resolution) output weight 0 when there are several.
    """
    if scheme not in ("mean", "decay"):
        raise ValueError(f"unknown deep-supervision weighting {scheme!r}; valid: mean, decay")
    weights = [0.5**i if scheme == "decay" else 1.0 for i in range(count)]
    if skip_lowest and count > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


class SegmentationLoss(nn.Module):
    """Wraps a criterion so a list of logits (deep supervision, first = final) is combined: averaged, or
    weighted by :func:`deep_supervision_weights` (``deep_supervision="decay"`` / ``skip_lowest``).

    Each extra output whose size differs from the target gets the target resized (nearest, so class
    indices stay indices). ``multiclass`` (optional) scores outputs with more than one channel.
    """

    def __init__(self, criterion: nn.Module, multiclass: nn.Module | None = None, *,
                 deep_supervision: str = "mean", skip_lowest: bool = False):
        super().__init__()
        self.criterion = criterion
        self.multiclass = multiclass
        deep_supervision_weights(1, deep_supervision)  # checks the name
        self.deep_supervision = deep_supervision
        self.skip_lowest = skip_lowest

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
        if self.deep_supervision == "mean" and not self.skip_lowest:
            return torch.stack(terms).mean()
        weights = deep_supervision_weights(len(terms), self.deep_supervision, self.skip_lowest)
        return sum(w * term for w, term in zip(weights, terms, strict=True))


def build_loss(name: str = "dice-bce", dice_weight: float = 1.0, bce_weight: float = 0.5, *,
               include_background: bool = False, deep_supervision: str = "mean", skip_lowest: bool = False,
               **options) -> SegmentationLoss:
    """The loss registered as ``name`` (one of :data:`LOSSES`), for one-channel (binary) and
    several-channel (multi-class, background in the Dice term only when ``include_background``) logits.

    ``options``: the other :class:`LossOptions` fields (``focal_gamma``, ``tversky_alpha``, ``tversky_beta``,
    ``class_weights``, ``pos_weight``).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    if options.get("class_weights") is not None:
        options["class_weights"] = tuple(float(w) for w in options["class_weights"])
    o = LossOptions(dice_weight, bce_weight, include_background, **options)
    if o.pos_weight is not None and name not in POS_WEIGHT_LOSSES:
        raise ValueError(f"pos_weight weighs a binary cross entropy; loss {name!r} has none "
                         f"(use one of {', '.join(POS_WEIGHT_LOSSES)})")
    if o.class_weights is not None and name not in CLASS_WEIGHT_LOSSES:
        raise ValueError(f"class_weights are not supported by loss {name!r} (use one of "
                         f"{', '.join(CLASS_WEIGHT_LOSSES)})")
    return SegmentationLoss(LOSSES[name](o), MULTICLASS_LOSSES[name](o), deep_supervision=deep_supervision,
                            skip_lowest=skip_lowest)
