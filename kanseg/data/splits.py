"""Split algorithms. Their outputs are frozen as explicit id lists in ``data_manifests/``.

``legacy_split`` reproduces ``sklearn.model_selection.train_test_split(ids, test_size=0.2,
random_state=seed)`` exactly (scikit-learn's ``ShuffleSplit``: ``n_test = ceil(test_size * n)``,
one ``np.random.RandomState(seed).permutation(n)``, test = its first ``n_test`` entries, train =
the rest, both in permutation order), applied to ids sorted the way U-KAN sorts them:
``sorted(glob("images/*.png"))``, i.e. file names compared as strings (``'1.png' < '10.png' <
'100.png' < '101.png' ... < '2.png'``), see :func:`ukan_sorted`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def ukan_sorted(ids: Sequence[str], suffix: str = ".png") -> list[str]:
    """Ids in the order of U-KAN's ``sorted(glob(images/*<suffix>))`` (string order of file names)."""
    return sorted(ids, key=lambda case_id: f"{case_id}{suffix}")


def legacy_split(ids: Sequence[str], seed: int, test_size: float = 0.2) -> tuple[list[str], list[str]]:
    """``(train, test)`` exactly as sklearn ``train_test_split(ids, test_size=test_size, random_state=seed)``."""
    n = len(ids)
    n_test = math.ceil(test_size * n)
    permutation = np.random.RandomState(seed).permutation(n)
    return [ids[i] for i in permutation[n_test:]], [ids[i] for i in permutation[:n_test]]


def stratified_folds(ids: Sequence[str], groups: Sequence[str], n_folds: int, seed: int) -> list[list[str]]:
    """``n_folds`` disjoint folds, each group (class) dealt round-robin after a seeded shuffle."""
    rng = np.random.RandomState(seed)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    offset = 0
    for group in sorted(set(groups)):
        members = [i for i, g in zip(ids, groups) if g == group]
        for k, index in enumerate(rng.permutation(len(members))):
            folds[(offset + k) % n_folds].append(members[index])
        offset += len(members)
    return folds


def contiguous_blocks(ids: Sequence[str], starts: Sequence[str]) -> list[list[str]]:
    """Cut ``ids`` (in order) into blocks beginning at each id of ``starts`` (after the first block)."""
    cuts = [ids.index(s) for s in starts]
    bounds = [0, *cuts, len(ids)]
    return [list(ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


N_FOLDS = 5  # cross-validation folds (nnU-Net's five), named ``<split>-fold<k>`` / ``fold<k>``, k = 0..4


def equal_blocks(ids: Sequence[str], n_blocks: int) -> list[list[str]]:
    """``ids`` (in order) cut into ``n_blocks`` contiguous blocks of (nearly) equal size."""
    return contiguous_blocks(ids, [ids[round(k * len(ids) / n_blocks)] for k in range(1, n_blocks)])


def cross_validation(folds: Sequence[Sequence[str]], test: Sequence[str]) -> list[dict[str, list[str]]]:
    """One split per fold: split ``k`` validates on fold ``k``, trains on the other folds, keeps ``test``."""
    return [{"train": [i for j, fold in enumerate(folds) if j != k for i in fold], "val": list(folds[k]),
             "test": list(test)} for k in range(len(folds))]
