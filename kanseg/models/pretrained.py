"""Pretrained-model folders: ``model.safetensors`` (weights) + ``config.json`` (how to build the model).

    >>> save_pretrained("exported/", model_name="unet-gram", model_kwargs=kwargs, state_dict=model.state_dict())
    >>> model = from_pretrained("exported/")        # eval mode, weights bit-equal

``config.json``::

    {
      "format": "kanseg-pretrained-v1",
      "kanseg_version": "0.1.0",
      "model": {"name": "unet-gram", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, ...}},
      "preprocessing": {...}                      # as in the checkpoint: all that inference needs
    }

Loading reads JSON and safetensors only: no pickle, so a folder never runs code. Both files are written
atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from kanseg import __version__
from kanseg.atomic import atomic_path, write_text_atomic
from kanseg.checkpoint import load_weights
from kanseg.errors import KansegError

FORMAT = "kanseg-pretrained-v1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def pretrained_config(model_name: str, model_kwargs: dict[str, Any],
                      preprocessing: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The ``config.json`` content (JSON types only: tuples become lists)."""
    config = {"format": FORMAT, "kanseg_version": __version__,
              "model": {"name": model_name, "kwargs": dict(model_kwargs)},
              "preprocessing": dict(preprocessing or {}), **extra}
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as err:
        raise KansegError(f"model {model_name!r}: its configuration is not JSON data ({err})") from None


def write_config(out_dir: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Write ``config.json`` in ``out_dir`` atomically."""
    return write_text_atomic(Path(out_dir) / CONFIG_NAME, json.dumps(config, indent=2) + "\n")


def save_pretrained(out_dir: str | os.PathLike, *, model_name: str, model_kwargs: dict[str, Any],
                    state_dict: dict[str, torch.Tensor], preprocessing: dict[str, Any] | None = None,
                    **extra: Any) -> list[Path]:
    """Write ``model.safetensors`` and ``config.json`` into ``out_dir``; return both paths.

    ``extra``: more JSON entries for ``config.json`` (an exporter records what it checked).
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    config = pretrained_config(model_name, model_kwargs, preprocessing, **extra)
    # Own, contiguous copies: safetensors refuses tensors that share memory.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "kanseg_format": FORMAT})
    return [out_dir / WEIGHTS_NAME, write_config(out_dir, config)]


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a pretrained folder, checked; one-line :class:`KansegError` otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KansegError(f"pretrained model folder not found: {folder}")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise KansegError(f"{folder} is not a kanseg pretrained folder: no {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise KansegError(f"cannot read {path}: not valid JSON") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise KansegError(f"{path} is not a kanseg pretrained config (expected format {FORMAT!r})")
    model = config.get("model")
    if not (isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("kwargs"), dict)):
        raise KansegError(f"{path}: 'model' must hold a 'name' and a 'kwargs' mapping")
    return config


def from_pretrained(folder: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the model a pretrained folder describes and load its safetensors weights (eval mode, on ``device``).

    Only JSON and safetensors are read, never pickle: loading runs no code from the folder.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from kanseg.models.registry import create_model

    folder = Path(folder)
    config = read_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise KansegError(f"{folder} is not a kanseg pretrained folder: no {WEIGHTS_NAME}")
    try:
        state_dict = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError):
        raise KansegError(f"cannot read {weights}: corrupt, truncated or not a safetensors file") from None
    name = config["model"]["name"]
    model = create_model(name, **config["model"]["kwargs"])
    load_weights(model, state_dict, name, weights)
    return model.to(device).eval()
