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


def freeze_parameters(model: nn.Module, prefixes: list[str]) -> int:
    """Freeze every parameter whose name starts with one of ``prefixes`` (a whole module path such as
    ``encoder`` or ``encoder.levels.0``); returns how many values were frozen. A prefix that names nothing
    is an error listing the model's top-level modules."""
    frozen = 0
    for prefix in prefixes:
        matched = [p for name, p in model.named_parameters() if name == prefix or name.startswith(prefix + ".")]
        if not matched:
            tops = sorted({name.split(".", 1)[0] for name, _ in model.named_parameters()})
            raise KansegError(f"freeze: no parameter of the model is under {prefix!r}; top-level modules: "
                              f"{', '.join(tops)}")
        for p in matched:
            if p.requires_grad:
                frozen += p.numel()
            p.requires_grad_(False)
    return frozen


def prepare_finetuning(cfg: TrainConfig, model: nn.Module, model_kwargs: dict[str, Any], *,
                       resumed: bool) -> dict[str, Any] | None:
    """Load ``cfg.init_from`` (not when resuming: ``last.pt`` holds everything), apply ``cfg.peft`` in place, then
    freeze the modules under ``cfg.freeze``. Returns the PEFT options a checkpoint records, or ``None``."""
    if cfg.init_from and not resumed:
        load_initial_weights(model, cfg.init_from, cfg.model.name, model_kwargs)
    options = None
    if cfg.peft.enabled:
        from kanseg.kan.peft import apply_peft

        apply_peft(model, **cfg.peft.model_dump())
        options = cfg.peft.model_dump()
    freeze_parameters(model, cfg.freeze)
    return options
