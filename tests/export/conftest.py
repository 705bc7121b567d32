"""Tiny checkpoints to export (depth 3, width 4: milliseconds per forward on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kanseg.checkpoint import save_checkpoint
from kanseg.models import create_model

TINY = dict(depth=3, base_width=4)


def make_checkpoint(folder: Path, name: str, spatial_dims: int, **overrides) -> Path:
    """Save a randomly initialised ``name`` (1 -> 2 channels) as a kanseg checkpoint; return its path."""
    kwargs = {"spatial_dims": spatial_dims, "in_channels": 1, "out_channels": 2, **TINY, **overrides}
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    preprocessing = {"spatial_dims": spatial_dims, "in_channels": 1, "intensity": "zscore"}
    return save_checkpoint(folder / f"{name}-{spatial_dims}d.pt", model_name=name, model_kwargs=kwargs,
                           state_dict=model.state_dict(), preprocessing=preprocessing)


@pytest.fixture
def checkpoint_factory(tmp_path):
    return lambda name, spatial_dims=2, **overrides: make_checkpoint(tmp_path, name, spatial_dims, **overrides)
