"""PEFT of trained KAN models: wrap every eligible KAN conv in place (:func:`apply_peft`), fuse (:func:`fuse_peft`).

The layer, its math and the supported families: :mod:`kanseg.kan.peft_layer` (:class:`PEFTKANConv`).

    >>> report = apply_peft(model, extra_degrees=1, trainable_degrees=[3])   # model: any kanseg model
    >>> report.wrapped, report.left          # names wrapped; {name: why} for KAN convs left alone
    >>> plain = fuse_peft(model)             # the same model object, every PEFT layer replaced by its fused layer

Only the KAN convs change: they are frozen, and their new degrees / deltas (plus norm, and base when asked) train.
Everything else in the model (plain convs, heads, upsampling) is left as it was, trainable or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from kanseg.errors import KansegError
from kanseg.kan.layers import KANConv
from kanseg.kan.peft_layer import PEFT_OPTIONS, PEFTKANConv, check_options, unsupported_reason

#: parameter names only a PEFT layer has (how a PEFT state dict is recognised).
_PEFT_PARAMETERS = ("extra_weight", "delta_weight", "extra_coefficients", "delta_coefficients")


@dataclass
class PEFTReport:
    """What :func:`apply_peft` did: the wrapped layer names, the KAN layers left alone and why, the options."""

    wrapped: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"PEFT {self.options}: wrapped {len(self.wrapped)} KAN conv(s), left {len(self.left)}"]
        lines += [f"  left {name}: {why}" for name, why in self.left.items()]
        return "\n".join(lines)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def peft_layers(model: nn.Module) -> dict[str, PEFTKANConv]:
    """The PEFT layers of ``model`` by name (``""`` when ``model`` is one)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PEFTKANConv)}


def apply_peft(model: nn.Module, *, extra_degrees: int = 1, trainable_degrees=(), finetune_base: bool = False,
               freeze_norm: bool = False) -> PEFTReport:
    """Wrap every eligible :class:`~kanseg.kan.KANConv` of ``model`` in a :class:`~kanseg.kan.peft.PEFTKANConv`, in
    place. Options as for :class:`PEFTKANConv`, the same for every layer; they are checked for every layer first,
    so a bad option leaves the model untouched. :class:`KansegError` (one line) for a model without KAN convs, without
    eligible ones, already wrapped, or for options a layer cannot take.
    """
    trainable_degrees = list(trainable_degrees or ())  # an iterator would be used up by the first layer
    if isinstance(model, (KANConv, PEFTKANConv)):
        raise KansegError("apply_peft wraps a model's layers in place; wrap a single layer with PEFTKANConv(conv)")
    if peft_layers(model):
        raise KansegError(f"apply_peft: {type(model).__name__} is already PEFT-wrapped; fuse_peft it first")
    convs = {name: m for name, m in model.named_modules() if isinstance(m, KANConv)}
    if not convs:
        raise KansegError(f"apply_peft: {type(model).__name__} has no KAN convolution layers (kanseg.kan.KANConv); "
                          "nothing to wrap")
    report = PEFTReport(options={"extra_degrees": extra_degrees, "trainable_degrees": trainable_degrees,
                                 "finetune_base": bool(finetune_base), "freeze_norm": bool(freeze_norm)})
    eligible = {}
    for name, conv in convs.items():
        reason = unsupported_reason(conv)
        if reason:
            report.left[name] = reason
            continue
        check_options(conv, extra_degrees, trainable_degrees, finetune_base, name)
        eligible[name] = conv
    if not eligible:
        families = sorted({c.family for c in convs.values()})
        raise KansegError(f"apply_peft: none of the {len(convs)} KAN convs can be wrapped "
                          f"(families: {', '.join(families)}): {next(iter(report.left.values()))}")
    for name, conv in eligible.items():
        _replace(model, name, PEFTKANConv(conv, extra_degrees=extra_degrees, trainable_degrees=trainable_degrees,
                                          finetune_base=finetune_base, freeze_norm=freeze_norm))
        report.wrapped.append(name)
    return report


def fuse_peft(model: nn.Module) -> nn.Module:
    """Replace every PEFT layer of ``model`` by its fused plain :class:`~kanseg.kan.KANConv` of degree D + E, in
    place, and return ``model`` (for a single :class:`PEFTKANConv`, return its fused layer).
    :class:`KansegError` when ``model`` holds no PEFT layer."""
    if isinstance(model, PEFTKANConv):
        return model.fuse()
    layers = peft_layers(model)
    if not layers:
        raise KansegError(f"fuse_peft: {type(model).__name__} is not PEFT-wrapped (no PEFT layers); "
                          "wrap it with apply_peft first")
    for name, layer in layers.items():
        _replace(model, name, layer.fuse())
    return model


def peft_options(model: nn.Module) -> dict | None:
    """The PEFT options ``model`` was wrapped with (:data:`~kanseg.kan.peft.PEFT_OPTIONS` keys), or ``None``."""
    layers = list(peft_layers(model).values())
    return layers[0].options if layers else None


def is_peft_state_dict(state_dict: dict) -> bool:
    """Whether a state dict comes from a PEFT-wrapped model."""
    return any(key.rpartition(".")[2] in _PEFT_PARAMETERS for key in state_dict)


def check_plain_state_dict(state_dict: dict, model: nn.Module) -> None:
    """:class:`KansegError` (one line) when a PEFT state dict is about to be loaded into a model that is not wrapped."""
    if is_peft_state_dict(state_dict) and not peft_layers(model):
        raise KansegError("these weights come from a PEFT-wrapped model, this model is plain: rebuild it with "
                          "kanseg.checkpoint.build_model (it re-applies the recorded PEFT options), or write a "
                          "plain checkpoint first with `kanseg peft fuse`")


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"trainable": n, "frozen": m}`` parameter counts of ``model``."""
    counts = {"trainable": 0, "frozen": 0}
    for p in model.parameters():
        counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    return counts


__all__ = ["PEFT_OPTIONS", "PEFTKANConv", "PEFTReport", "apply_peft", "check_plain_state_dict", "count_parameters",
           "fuse_peft", "is_peft_state_dict", "peft_layers", "peft_options"]
