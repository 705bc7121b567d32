"""Shared fixtures: the generated demo dataset and a tiny, fast training config."""

from pathlib import Path

import pytest

from kanseg.config import TrainConfig, load_config

TINY = {
    "data.dataset": "demo", "data.image_size": 32, "model.name": "unet-gram",
    "model.kwargs": {"base_width": 4, "depth": 2}, "batch_size": 4, "optim.lr": 1e-2, "optim.min_lr": 1e-3,
    "device": "cpu", "monitor": "dice",
}


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The demo dataset (40 generated 64x64 cases: 24 train / 8 val / 8 test) in a temporary folder."""
    from kanseg.data import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(scope="session")
def tiny_config(demo_root):
    """``tiny_config(out, **dotted_overrides)`` -> a 32x32, ~10 k-parameter KAN U-Net config."""

    def make(out: Path, **overrides) -> TrainConfig:
        return load_config(None, {**TINY, "data.data_root": str(demo_root), "out": str(out), **overrides})

    return make

