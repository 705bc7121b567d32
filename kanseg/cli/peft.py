"""``kanseg peft fuse``: write the fused plain checkpoint of a PEFT fine-tuned run (:mod:`kanseg.kan.peft`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kanseg.cli import app
from kanseg.errors import KansegError

peft_app = typer.Typer(help="Parameter-efficient fine-tuning of KAN models: fuse a PEFT checkpoint back.",
                       no_args_is_help=True)
app.add_typer(peft_app, name="peft")

_KEPT = ("epoch", "metrics", "monitor", "patch_size")  # checkpoint fields that still describe the fused model
_OPTION_KEYS = ("block_options", "encoder_block_options", "decoder_block_options")


def _plain_spec(name: str, kwargs: dict[str, Any], fused) -> dict[str, Any] | None:
    """Model kwargs that build ``fused`` directly (its KAN degree set in one of the ``*block_options``), or ``None``."""
    from kanseg.kan import KANConv
    from kanseg.models import create_model

    state = fused.state_dict()
    degrees = {m.basis.degree for m in fused.modules() if isinstance(m, KANConv) and hasattr(m.basis, "degree")}
    for key in _OPTION_KEYS:
        for degree in sorted(degrees):
            candidate = {**kwargs, key: {**(kwargs.get(key) or {}), "degree": degree}}
            try:
                create_model(name, **candidate).load_state_dict(state)
            except (KansegError, ValueError, TypeError, RuntimeError):
                continue
            return candidate
    return None


def fuse_checkpoint(checkpoint: str | Path, out: str | Path) -> tuple[Path, bool]:
    """Fuse the PEFT checkpoint ``checkpoint`` into a plain one at ``out``. Returns ``(out, plain_preset)``:
    ``plain_preset`` is True when ``create_model(name, **kwargs)`` of the new checkpoint builds the fused model by
    itself (the degree is set in its ``block_options``); otherwise the checkpoint keeps a ``peft`` record with
    ``fused: true`` and :func:`kanseg.checkpoint.build_model` rebuilds it."""
    from kanseg.checkpoint import build_model, load_checkpoint, save_checkpoint
    from kanseg.kan.peft import fuse_peft

    ckpt = load_checkpoint(checkpoint)
    if not ckpt.get("peft") or ckpt["peft"].get("fused"):
        raise KansegError(f"{checkpoint} is not a PEFT checkpoint (no unfused 'peft' record); nothing to fuse")
    model = fuse_peft(build_model(ckpt))
    spec = ckpt["model"]
    kwargs = _plain_spec(spec["name"], spec["kwargs"], model)
    extra = {k: ckpt[k] for k in _KEPT if k in ckpt}
    if kwargs is None:
        kwargs, extra["peft"] = spec["kwargs"], {**ckpt["peft"], "fused": True}
    extra["fused_from"] = {"checkpoint": str(checkpoint), "peft": ckpt["peft"]}
    path = save_checkpoint(out, model_name=spec["name"], model_kwargs=kwargs, state_dict=model.state_dict(),
                           preprocessing=ckpt["preprocessing"], **extra)
    return path, "peft" not in extra


@peft_app.command("fuse")
def fuse_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint of a PEFT run (e.g. RUN/best.pt)."),
    out: Path = typer.Option(..., "--out", help="Where to write the fused plain checkpoint."),
) -> None:
    """Fuse every PEFT layer into a plain KAN conv of degree D + E and write a plain checkpoint."""
    path, plain = fuse_checkpoint(checkpoint, out)
    how = "a plain preset (degree in its block options)" if plain else "rebuilt by kanseg.checkpoint.build_model"
    typer.echo(f"fused checkpoint: {path} ({how}); use it with kanseg predict / evaluate or --init-from")
