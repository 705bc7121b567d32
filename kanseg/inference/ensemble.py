"""Ensembles: several checkpoints of one task (e.g. the five cross-validation folds), probabilities averaged.

Each member predicts with its own preprocessing and sliding window, and its probabilities are brought back
to the scan's own grid before averaging (as nnU-Net averages its folds), so members trained at other image
sizes, spacings or patch sizes (3D folds have their own fingerprints) still average voxel by voxel. What
must agree is what the probabilities mean: spatial dims, input channels and classes.

    >>> ensemble = EnsemblePredictor.from_checkpoints(["fold0/best.pt", "fold1/best.pt"], tta=True)
    >>> mask = ensemble.predict_mask(image)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kanseg.errors import KansegError
from kanseg.inference.predictor import Predictor, probabilities_to_mask

#: preprocessing entries that define what the probabilities mean; members of an ensemble must agree on them
SHARED_KEYS = ("spatial_dims", "in_channels", "channel_order", "classes", "label_values")


class EnsemblePredictor:
    """Averages the probabilities of several :class:`Predictor` s on the scan's own grid.

    Offers the :class:`Predictor` methods that prediction uses (``predict_array``, ``predict_volume``,
    ``predict_mask``) and attributes (``preprocessing`` of the first member, ``spatial_dims``,
    ``in_channels``, ``threshold``).
    """

    def __init__(self, members: Sequence[Predictor], names: Sequence[str] | None = None):
        if not members:
            raise KansegError("an ensemble needs at least one checkpoint")
        self.members = list(members)
        names = list(names or (f"member {i}" for i in range(len(members))))
        first = self.members[0]
        for name, member in zip(names[1:], self.members[1:]):
            for key in SHARED_KEYS:
                if member.preprocessing.get(key) != first.preprocessing.get(key):
                    raise KansegError(
                        f"cannot ensemble {names[0]} and {name}: they differ in {key} "
                        f"({first.preprocessing.get(key)!r} vs {member.preprocessing.get(key)!r}); an ensemble "
                        "needs models of one task (same spatial dims, input channels and classes)")
            if member.threshold != first.threshold:
                raise KansegError(f"cannot ensemble {names[0]} and {name}: different thresholds")
        self.preprocessing = first.preprocessing
        self.spatial_dims, self.in_channels, self.threshold = first.spatial_dims, first.in_channels, first.threshold

    @classmethod
    def from_checkpoints(cls, checkpoints: Sequence[str | os.PathLike], **options: Any) -> EnsemblePredictor:
        """One :class:`Predictor` per checkpoint, all with the same ``options`` (roi_size, tta, device...)."""
        return cls([Predictor.from_checkpoint(c, **options) for c in checkpoints], [str(c) for c in checkpoints])

    def _mean(self, predict) -> torch.Tensor:
        total = None
        for member in self.members:
            prob = predict(member)
            if total is not None and prob.shape != total.shape:
                raise KansegError(f"ensemble members predict {tuple(total.shape)} and {tuple(prob.shape)} "
                                  "probabilities: their numbers of output channels differ")
            total = prob if total is None else total.add_(prob)
        return total.div_(len(self.members))

    def predict_array(self, native: np.ndarray, progress: bool = False, affine: np.ndarray | None = None
                      ) -> torch.Tensor:
        """Mean of the members' :meth:`Predictor.predict_array` ``(C_out, *spatial)`` at native resolution."""
        return self._mean(lambda m: m.predict_array(native, progress=progress, affine=affine))

    def predict_volume(self, native: np.ndarray, affine: np.ndarray, progress: bool = False) -> torch.Tensor:
        """Mean of the members' :meth:`Predictor.predict_volume` on the volume's own voxel grid."""
        return self._mean(lambda m: m.predict_volume(native, affine, progress=progress))

    def predict_mask(self, native: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
        """Native (*spatial, C) array -> uint8 mask of the averaged probabilities."""
        return probabilities_to_mask(self.predict_array(native, affine=affine), self.threshold)
