"""Checks of command-line input that run before torch or MONAI is imported (a bad name or path is reported
in well under a second; building a model or a dataset takes several).

Nothing here imports torch: dataset names and folders go through :mod:`kanseg.data.names`; model names are
checked against :data:`MODEL_NAMES`, a static copy of the registry's preset names that
``tests/cli/test_snappy.py`` keeps equal to :func:`kanseg.models.list_models`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from kanseg.errors import KansegError

#: ``kanseg.models.list_models()`` (importing the registry loads torch); a test keeps the two equal.
MODEL_NAMES = (
    "attunet-gram", "dynunet-conv", "dynunet-gram", "monai-basicunet", "monai-dynunet", "smp-unet-resnet18",
    "smp-unet-resnet34", "ukagnet", "ukagnet-bottleneck", "unet-bernstein", "unet-bspline", "unet-chebyshev",
    "unet-conv", "unet-gram", "unet-gram-attention", "unet-gram-bottleneck", "unet-gram-conv",
    "unet-gram-decoder-focal", "unet-gram-focal", "unet-jacobi", "unet-legendre", "unet-rbf", "unet-relu",
    "unet-wavelet", "unetpp-gram", "unetpp-gram-ds",
)


def check_models(names: Iterable[str]) -> None:
    """Unknown model presets: one line listing the valid ones (the registry's own message)."""
    for name in names:
        if name not in MODEL_NAMES:
            raise KansegError(f"unknown model {name!r}; valid: {', '.join(MODEL_NAMES)}")


def check_dataset(name: str, data_root: str | os.PathLike | None) -> None:
    """Unknown dataset name, or a ``--data-root`` / dataset.json that does not exist."""
    from kanseg.data.names import check_dataset as _check_dataset

    _check_dataset(name, data_root)


def check_training(cfg) -> None:
    """What a training run can check about a resolved :class:`~kanseg.config.TrainConfig` without torch."""
    check_dataset(cfg.data.dataset, cfg.data.data_root)
    check_models([cfg.model.name])


def check_files(paths: Iterable[str | os.PathLike], what: str) -> None:
    """Each path must exist (``what`` names it in the message: ``checkpoint``, ``input``)."""
    for path in paths:
        if not Path(path).exists():
            raise KansegError(f"{what} not found: {path}")


def check_run_dir(run: str | os.PathLike) -> None:
    """A kanseg run directory holds its ``config.yaml``."""
    if not (Path(run) / "config.yaml").is_file():
        raise KansegError(f"{run} is not a kanseg run directory (no config.yaml)")
