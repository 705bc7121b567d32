"""Fine-tuning set-up of a run: start from a trained checkpoint (``init_from``), then wrap the KAN convs for PEFT
(``peft.*``, :mod:`kanseg.kan.peft`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from kanseg.checkpoint import load_checkpoint
from kanseg.config import TrainConfig
from kanseg.errors import KansegError


def load_initial_weights(model: nn.Module, path: str, model_name: str, model_kwargs: dict[str, Any]) -> None:
    """Load the checkpoint at ``path`` into the plain ``model``; one-line errors when its weights do not fit."""
    from kanseg.kan.peft import check_plain_state_dict

    ckpt = load_checkpoint(path)
    if ckpt.get("peft") and not ckpt["peft"].get("fused"):
        raise KansegError(f"--init-from {path} holds a PEFT-wrapped model; write a plain checkpoint first with "
                          f"`kanseg peft fuse --checkpoint {path} --out FUSED.pt`")
    check_plain_state_dict(ckpt["state_dict"], model)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        spec = ckpt["model"]
        raise KansegError(f"--init-from {path} holds {spec['name']!r} {spec['kwargs']}, this run builds "
                          f"{model_name!r} {model_kwargs}: pass the same --model and model.kwargs "
                          f"({str(err).splitlines()[0]})") from None


def prepare_finetuning(cfg: TrainConfig, model: nn.Module, model_kwargs: dict[str, Any], *,
                       resumed: bool) -> dict[str, Any] | None:
    """Load ``cfg.init_from`` (not when resuming: ``last.pt`` holds everything) and apply ``cfg.peft`` in place.
    Returns the PEFT options a checkpoint records, or ``None`` without PEFT."""
    if cfg.init_from and not resumed:
        load_initial_weights(model, cfg.init_from, cfg.model.name, model_kwargs)
    if not cfg.peft.enabled:
        return None
    from kanseg.kan.peft import apply_peft

    apply_peft(model, **cfg.peft.model_dump())
    return cfg.peft.model_dump()
