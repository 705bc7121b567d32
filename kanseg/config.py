"""Training configuration: pydantic models, YAML defaults, flag overrides, resolved dump.

Order of precedence (timm style): built-in defaults < ``--config file.yaml`` < command-line flags.
The fully resolved config is written next to the checkpoints as ``config.yaml``.

    >>> cfg = load_config("configs/busi.yaml", {"epochs": 5, "data.image_size": 128})
    >>> cfg.optim.lr, cfg.data.dataset
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kanseg.atomic import write_text_atomic
from kanseg.errors import KansegError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    dataset: str = "demo"
    data_root: str | None = None
    split: str | None = None
    image_size: int | list[int] | None = None  # None: the dataset's default (2D: 256, GlaS 512; 3D: native)
    patch_size: list[int] | None = None
    augment: bool = True
    include_normal: bool = False
    val_subset: Literal["val", "test"] = "val"
    num_workers: int = Field(0, ge=0)
    # 3D (NIfTI): intensity normalisation (auto = CT clip-and-normalise, else z-score), target spacing in mm
    # (None: the dataset's median), elastic augmentation, largest volume accepted after resampling
    normalization: Literal["auto", "zscore", "ct"] = "auto"
    spacing: list[float] | None = None
    elastic: bool = False
    max_volume_mb: float = Field(2048.0, gt=0)


class ModelConfig(_Section):
    name: str = "unet-gram"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class LossConfig(_Section):
    name: Literal["dice-bce", "dice", "bce", "dice-focal", "tversky"] = "dice-bce"
    dice_weight: float = Field(1.0, ge=0)
    bce_weight: float = Field(0.5, ge=0)  # dice-bce: cross-entropy term; dice-focal: focal term
    include_background: bool = False  # multi-class: background channel in the Dice term
    focal_gamma: float = Field(2.0, ge=0)  # dice-focal
    tversky_alpha: float = Field(0.5, ge=0)  # tversky: weight of false positives
    tversky_beta: float = Field(0.5, ge=0)  # tversky: weight of false negatives
    class_weights: list[float] | None = None  # multi-class: one weight per class, background first
    pos_weight: float | None = Field(None, gt=0)  # binary: BCE weight of positive pixels
    # deep supervision (a list of logits, final first): "mean" weighs outputs equally, "decay" as nnU-Net
    # (1, 1/2, 1/4, ... normalised); ds_skip_lowest gives the lowest-resolution output weight 0
    deep_supervision: Literal["mean", "decay"] = "mean"
    ds_skip_lowest: bool = False
    # penalties of the paper's regularisation study (kanseg.engine.penalties), added to the loss, logged apart:
    # L1 of the weights of every KAN conv but the first; L1 / L2 batch-axis norms of every KAN conv's output
    l1_weight: float = Field(0.0, ge=0)
    l1_activation: float = Field(0.0, ge=0)
    l2_activation: float = Field(0.0, ge=0)
    activation_per_sample: bool = False  # divide the activation terms by the batch size

    @field_validator("class_weights")
    @classmethod
    def _non_negative_weights(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or min(value) < 0 or max(value) <= 0):
            raise ValueError("must be non-negative, one per class, not all zero")
        return value


class OptimConfig(_Section):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    kan_lr: float | None = Field(None, gt=0)
    kan_weight_decay: float | None = Field(None, ge=0)
    kan_scope: Literal["kan-layer", "basis"] = "kan-layer"
    scheduler: Literal["cosine", "poly", "none"] = "cosine"
    min_lr: float = Field(1e-5, ge=0)  # cosine only
    warmup_epochs: int = Field(0, ge=0)  # linear warm-up before the schedule
    grad_clip: float | None = Field(None, gt=0)
    accumulate: int = Field(1, ge=1)  # batches per optimiser step (gradient accumulation)
    ema_decay: float | None = Field(None, gt=0, lt=1)  # EMA of the weights for validation and best.pt


class EarlyStopConfig(_Section):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs (None: off)."""

    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0)


class PeftConfig(_Section):
    """Parameter-efficient fine-tuning of the KAN convs (:mod:`kanseg.kan.peft`); on when ``extra_degrees`` > 0 or
    ``trainable_degrees`` is set, usually with ``init_from`` a trained checkpoint."""

    extra_degrees: int = Field(0, ge=0)
    trainable_degrees: list[int] = Field(default_factory=list)
    finetune_base: bool = False
    freeze_norm: bool = False

    @property
    def enabled(self) -> bool:
        return self.extra_degrees > 0 or bool(self.trainable_degrees)


class TrainConfig(_Section):
    """Everything a training run needs; ``config.yaml`` in a run directory is one of these."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    peft: PeftConfig = Field(default_factory=PeftConfig)
    init_from: str | None = None  # a checkpoint whose weights the new run starts from (fine-tuning)
    freeze: list[str] = Field(default_factory=list)  # parameter-name prefixes kept frozen, e.g. [encoder]
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "fp16", "bf16"] = "off"
    threshold: float = Field(0.5, gt=0, lt=1)
    monitor: Literal["dice", "iou", "global_dice", "global_iou", "ukan_dice", "ukan_iou"] = "iou"
    val_every: int = Field(1, ge=1)
    early_stop: EarlyStopConfig = Field(default_factory=EarlyStopConfig)
    tensorboard: bool = False  # TensorBoard event files in the run directory (pip install 'kanseg[tensorboard]')
    # torch.compile the training forward (inductor; needs a C++ compiler on CPU). Validation and checkpoints use the
    # plain model. Measured on 2 CPU cores: study-size unet-gram epochs 10-11 s -> 7.5-9 s after ~1 min of
    # compiling, so it pays from ~30 epochs (benchmarks/README.md section 3); single process only.
    compile: bool = False
    ukan_batch_size: int = Field(8, ge=1)
    out: str | None = None

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_off_as_yaml_reads_it(cls, value: Any) -> Any:
        return "off" if value is False else value  # `amp: off` in a YAML 1.1 file is the boolean false

    @field_validator("out")
    @classmethod
    def _no_empty_out(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value


def valid_keys(model: type[BaseModel] = TrainConfig, prefix: str = "") -> list[str]:
    """Dotted names of every settable key, e.g. ``['data.dataset', ..., 'optim.lr', 'epochs', ...]``."""
    keys = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += valid_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    if key not in valid_keys() and not key.startswith("model.kwargs."):
        raise KansegError(f"invalid config key {key!r}; valid keys: {', '.join(valid_keys())}")
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise KansegError(f"config key {key!r}: {part!r} is not a section")
    node[leaf] = copy.deepcopy(value)  # later dotted keys may write into it: never into the caller's objects


def _one_line(err: ValidationError, source: str) -> KansegError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return KansegError(f"invalid config key {key!r} in {source}; valid keys: {', '.join(valid_keys())}")
    return KansegError(f"invalid value for {key!r} in {source}: {first['msg']} (got {first.get('input')!r})")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise KansegError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise KansegError(f"cannot parse {path}: {str(err).splitlines()[0]}")
    if not isinstance(tree, dict):
        raise KansegError(f"{path} must hold a mapping of config keys, got {type(tree).__name__}")
    return tree


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then dotted ``overrides`` (``None`` values skipped).

    Raises:
        KansegError: unknown key (the message lists the valid keys), bad value, unreadable file.
    """
    tree = _read_yaml(Path(path)) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    try:
        TrainConfig.model_validate(tree)
    except ValidationError as err:
        raise _one_line(err, source)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as err:
        raise _one_line(err, "command-line flags")


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"optim.lr=3e-4"`` -> ``("optim.lr", 0.0003)`` (the value is parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise KansegError(f"--set expects KEY=VALUE, got {text!r}")
    return key.strip(), _yaml_value(raw)


_YAML11_BOOLS = ("on", "off", "yes", "no", "y", "n")


def _yaml_value(raw: str) -> Any:
    """A YAML value, read as YAML 1.2 reads scalars: ``3e-3`` is a float (YAML 1.1 needs ``3.0e-3``) and
    ``off`` / ``yes`` stay strings (``amp=off`` is the mode ``"off"``; a boolean key still takes them, pydantic
    reads ``"yes"`` / ``"off"`` as booleans)."""
    if raw.strip().lower() in _YAML11_BOOLS:
        return raw.strip()
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            return value
    return value


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically)."""
    return write_text_atomic(path, yaml.safe_dump(cfg.model_dump(), sort_keys=False))


@dataclass(frozen=True)
class ModelSpec:
    """A preset, its ``model.kwargs`` overrides and per-model config ``settings`` (``optim.kan_lr``, ``epochs``,
    ``loss.l1_weight``...); ``label`` (``name@key=value...``) names its runs."""

    name: str
    kwargs: dict[str, Any] = dataclass_field(default_factory=dict)
    settings: dict[str, Any] = dataclass_field(default_factory=dict)

    @property
    def label(self) -> str:
        options = {**_flatten(self.kwargs), **self.settings}
        return self.name + "".join(f"@{k}={_scalar(v)}" for k, v in sorted(options.items()))

    def apply(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` with this model, its kwargs merged over ``cfg.model.kwargs`` (nested dicts key by key) and its
        settings applied as dotted config keys."""
        tree = cfg.model_dump()
        tree["model"]["name"] = self.name
        tree["model"]["kwargs"] = _merge(tree["model"].get("kwargs") or {}, self.kwargs)
        for key, value in self.settings.items():
            _set_dotted(tree, key, value)
        try:
            return TrainConfig.model_validate(tree)
        except ValidationError as err:
            raise _one_line(err, f"model spec {self.label!r}") from None


_SPEC_RESERVED = ("seed", "out", "model.name", "model.kwargs")


def parse_model_spec(text: str) -> ModelSpec:
    """``"unet-gram@base_width=4@block_options.dropout=0.1@optim.kan_lr=3e-3"`` -> ``ModelSpec("unet-gram",
    {"base_width": 4, "block_options": {"dropout": 0.1}}, {"optim.kan_lr": 0.003})``: config keys
    (:func:`valid_keys`, e.g. ``epochs``, ``optim.kan_lr``) become settings, every other key a model kwarg
    (dots nest). Values are read as YAML scalars."""
    name, *options = [part.strip() for part in text.strip().split("@")]
    kwargs: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise KansegError(f"bad model option {option!r} in {text!r}; write MODEL@KEY=VALUE, "
                              "e.g. unet-gram@base_width=4")
        if key in _SPEC_RESERVED or key.startswith("model.kwargs."):
            raise KansegError(f"model option {key!r} in {text!r} cannot be set per model; write model kwargs "
                              "without the model.kwargs. prefix, e.g. unet-gram@base_width=4")
        try:
            parsed = _yaml_value(value)
        except yaml.YAMLError:
            raise KansegError(f"bad value {value!r} for {key!r} in {text!r}") from None
        if key in valid_keys():
            settings[key] = parsed
            continue
        *parents, leaf = key.split(".")
        node = kwargs
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise KansegError(f"model option {key!r} in {text!r}: {part!r} is set twice")
        node[leaf] = parsed
    if not name:
        raise KansegError(f"model spec {text!r} has no preset name")
    return ModelSpec(name, kwargs, settings)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip() \
        if isinstance(value, (list, dict)) else str(value)
