"""Checkpoints: data only, loadable with ``torch.load(..., weights_only=True)``.

Format (``format == "kanseg-checkpoint-v1"``)::

    {
      "format": "kanseg-checkpoint-v1",
      "kanseg_version": "0.1.0",
      "model": {"name": "unet-gram", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, ...}},
                                       # out_channels: 1 (binary, sigmoid) or K classes (softmax)
      "preprocessing": {...},          # JSON-like dict from the dataset; all that inference needs
                                       # (multi-class: "classes" names and on-disk "label_values")
      "state_dict": {...},             # model weights
      "peft": {...},                   # optional: kanseg.kan.peft options (+ "fused": true when written fused)
      "epoch": int, "metrics": {...},  # optional
      ...                              # training state (optimizer, scheduler, scaler, rng) in last.pt
    }

Only plain containers, numbers, strings and tensors are stored, so loading never executes code.
Writes are atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from kanseg import __version__
from kanseg.errors import KansegError

FORMAT = "kanseg-checkpoint-v1"


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model_name: str,
    model_kwargs: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    preprocessing: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Atomically write a checkpoint to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "kanseg_version": __version__,
        "model": {"name": model_name, "kwargs": dict(model_kwargs)},
        "preprocessing": dict(preprocessing or {}),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        **extra,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``); one-line errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise KansegError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated, or not a torch file
        raise KansegError(f"cannot read checkpoint {path}: {type(err).__name__}: {str(err).splitlines()[0]}")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise KansegError(f"{path} is not a kanseg checkpoint (expected format {FORMAT!r})")
    return ckpt


def build_model(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    from kanseg.models import create_model

    spec = ckpt["model"]
    model = create_model(spec["name"], **spec["kwargs"])
    if ckpt.get("peft"):  # fine-tuned with kanseg.kan.peft: wrap (and fuse, for a fused checkpoint) before loading
        from kanseg.kan.peft import apply_peft, fuse_peft

        options = dict(ckpt["peft"])
        fused = options.pop("fused", False)
        apply_peft(model, **options)
        if fused:
            fuse_peft(model)
    else:
        from kanseg.kan.peft import check_plain_state_dict

        check_plain_state_dict(ckpt["state_dict"], model)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise KansegError(
            f"checkpoint weights do not fit model {spec['name']!r}: {str(err).splitlines()[0]}"
        )
    return model.eval()
