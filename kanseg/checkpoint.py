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
Writes are atomic (:func:`kanseg.atomic.atomic_path`: temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from kanseg import __version__
from kanseg.atomic import atomic_path
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
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``); one-line errors for bad files."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise KansegError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # a pickled class or function: loading it could run code
            raise KansegError(f"refusing checkpoint {path}: it holds Python objects other than tensors and plain "
                              "data, and kanseg never runs code from a checkpoint") from None
        raise KansegError(f"cannot read checkpoint {path}: corrupt, truncated or not a PyTorch file") from None
    except Exception:  # random bytes reach many errors inside the unpickler (IndexError, KeyError, ...)
        raise KansegError(f"cannot read checkpoint {path}: corrupt, truncated or not a PyTorch file") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise KansegError(f"{path} is not a kanseg checkpoint (expected format {FORMAT!r})")
    return ckpt


def weights_mismatch(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], limit: int = 3) -> str | None:
    """What keeps ``state_dict`` from loading into ``model``: the first missing, unexpected and
    shape-mismatched tensors (None when it fits)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {_shape(state_dict[k])} in the checkpoint, {_shape(own[k])} in the model"
              for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    parts = [f"{what} ({len(items)}): {', '.join(items[:limit])}{', ...' if len(items) > limit else ''}"
             for what, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if items]
    return "; ".join(parts) or None


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], model_name: str,
                 source: str | os.PathLike) -> None:
    """``model.load_state_dict(state_dict)`` with a one-line error naming the model, the checkpoint and
    the first mismatching tensors."""
    problem = weights_mismatch(model, state_dict)
    if problem is None:
        try:
            model.load_state_dict(state_dict)
            return
        except RuntimeError as err:
            problem = str(err).strip().splitlines()[-1].strip()
    raise KansegError(f"checkpoint {source} does not fit model {model_name!r}: {problem}")


def build_model(ckpt: dict[str, Any], source: str | os.PathLike = "checkpoint") -> torch.nn.Module:
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
    load_weights(model, ckpt["state_dict"], spec["name"], source)
    return model.eval()
