"""From a :class:`~kanseg.config.TrainConfig` to the objects a run needs: run directory, datasets,
model, loss, optimiser, schedule. Shared by training, evaluation and benchmarking."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kanseg.config import TrainConfig
from kanseg.engine.losses import build_loss
from kanseg.engine.optim import build_optimizer, build_scheduler
from kanseg.errors import KansegError

RUN_FILES = ("config.yaml", "best.pt", "last.pt", "metrics.jsonl", "summary.json")
RESULT_FILES = ("best.pt", "last.pt", "summary.json")  # what makes a folder hold a run worth keeping


def default_run_dir(cfg: TrainConfig, root: str | Path = "runs") -> Path:
    """``runs/<dataset>-<model>-s<seed>-<YYYYmmdd-HHMMSS>``."""
    dataset = cfg.data.dataset
    if dataset.endswith(".json"):
        dataset = Path(dataset).resolve().parent.name
    return Path(root) / f"{dataset}-{cfg.model.name}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


# settings added after the first release: left out of a fingerprint while at their default, so the runs made
# before them keep their digest
LATER_DEFAULTS = {
    "loss": {"focal_gamma": 2.0, "tversky_alpha": 0.5, "tversky_beta": 0.5, "class_weights": None,
             "pos_weight": None, "deep_supervision": "mean", "ds_skip_lowest": False, "l1_weight": 0.0,
             "l1_activation": 0.0, "l2_activation": 0.0, "activation_per_sample": False},
    "optim": {"warmup_epochs": 0, "accumulate": 1, "ema_decay": None},
    "early_stop": {"patience": None, "min_delta": 0.0},
    "peft": {"extra_degrees": 0, "trainable_degrees": [], "finetune_base": False, "freeze_norm": False},
    "init_from": None,
    "freeze": [],
}


def run_fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    """What a run computes, as plain data: the resolved config less where its data lives, where it runs and
    where it writes (``out``, ``device``, ``tensorboard``, ``data.data_root``, ``data.num_workers``) and less the later settings
    at their default (:data:`LATER_DEFAULTS`). Equal fingerprints, same run."""
    dump = cfg.model_dump()
    for key in ("out", "device", "tensorboard"):
        dump.pop(key)
    for key in ("data_root", "num_workers"):
        dump["data"].pop(key)
    _drop_defaults(dump, LATER_DEFAULTS)
    return dump


def _drop_defaults(tree: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, default in defaults.items():
        if isinstance(default, dict):
            _drop_defaults(tree[key], default)
            if not tree[key]:
                tree.pop(key)
        elif tree[key] == default:
            tree.pop(key)


def run_digest(cfg: TrainConfig) -> str:
    """8 hex digits of :func:`run_fingerprint` (SHA-1 of its sorted JSON), for folder names."""
    text = json.dumps(run_fingerprint(cfg), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def check_new_run_dir(run_dir: Path) -> bool:
    """A new run never overwrites another run's results; True when ``run_dir`` holds a run that stopped
    before its first checkpoint (``config.yaml`` / ``log.txt`` only), which the new run may take over."""
    if run_dir.exists() and not run_dir.is_dir():
        raise KansegError(f"--out {run_dir} exists and is not a directory")
    taken = [name for name in RESULT_FILES if (run_dir / name).exists()]
    if taken:
        raise KansegError(
            f"{run_dir} already holds a run ({', '.join(taken)}); continue it with --resume {run_dir} "
            "or choose another --out"
        )
    return any((run_dir / name).exists() for name in (*RUN_FILES, "log.txt"))


def take_over_run_dir(run_dir: Path) -> None:
    """Make a run directory without checkpoints ready for a fresh start: drop its epoch lines (an epoch
    logged but never checkpointed) and kanseg's stale temporary files; ``log.txt`` is kept."""
    from kanseg.atomic import remove_stale_temps

    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    remove_stale_temps(run_dir)


def last_epoch(run_dir: Path) -> int | None:
    """Epochs stored in ``run_dir/last.pt`` (read without loading the tensors), None without a readable one."""
    path = run_dir / "last.pt"
    if not path.is_file():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])
    except Exception:  # unreadable: the caller only wants it for a message
        return None


def build_datasets(cfg: TrainConfig, subsets: tuple[str, ...] = ("train", "val")) -> dict[str, Any]:
    """The kanseg.data datasets of ``subsets`` (augmentation and patches only for ``train``)."""
    from kanseg.data import build_dataset

    data = cfg.data
    out = {}
    for subset in subsets:
        train = subset == "train"
        out[subset] = build_dataset(
            data.dataset, data_root=data.data_root, split=data.split, subset=subset,
            image_size=data.image_size, augment=data.augment and train, seed=cfg.seed,
            # every subset gets the patch size (only train crops), so their preprocessing records are equal
            include_normal=data.include_normal, patch_size=tuple(data.patch_size) if data.patch_size else None,
            normalization=data.normalization, spacing=data.spacing, elastic=data.elastic,
            max_volume_mb=data.max_volume_mb,
        )
        if len(out[subset]) == 0:
            raise KansegError(f"the {subset} subset of {data.dataset} (split {data.split or 'default'}) is empty")
    return out


def num_classes(dataset: Any) -> int:
    """K, the number of classes including background (2 for binary datasets)."""
    count = getattr(dataset, "num_classes", None)
    return int(count) if count else max(2, len(dataset.preprocessing.get("classes") or ()))


def model_kwargs(cfg: TrainConfig, dataset: Any) -> dict[str, Any]:
    """Constructor arguments of the run's model: the data's dims and channels (one sigmoid output for
    binary data, one softmax channel per class for several foreground classes), then ``model.kwargs``."""
    classes = num_classes(dataset)
    if classes > 2 and cfg.monitor.startswith("ukan_"):
        raise KansegError(f"monitor {cfg.monitor} is the binary published-table protocol; this dataset has "
                          f"{classes - 1} foreground classes: use dice, iou, global_dice or global_iou")
    return {"spatial_dims": dataset.spatial_dims, "in_channels": dataset.in_channels,
            "out_channels": 1 if classes <= 2 else classes, **cfg.model.kwargs}


def make_model(cfg: TrainConfig, kwargs: dict[str, Any]) -> nn.Module:
    """``kanseg.models.create_model(cfg.model.name, **kwargs)``; bad names / options are user errors."""
    from kanseg.models import create_model

    try:
        return create_model(cfg.model.name, **kwargs)
    except (ValueError, TypeError) as err:
        raise KansegError(f"cannot build model {cfg.model.name!r}: {str(err).splitlines()[0]}") from None


def build_loss_for(cfg: TrainConfig, out_channels: int) -> nn.Module:
    """The run's loss (:func:`kanseg.engine.losses.build_loss`); weights that do not fit the data are user errors."""
    c = cfg.loss
    if c.class_weights is not None and len(c.class_weights) != out_channels:
        kind = "binary data (use loss.pos_weight)" if out_channels == 1 else f"{out_channels} classes"
        raise KansegError(f"loss.class_weights has {len(c.class_weights)} values; this model has {kind}")
    if c.pos_weight is not None and out_channels != 1:
        raise KansegError(f"loss.pos_weight is for binary data; this model has {out_channels} classes "
                          "(use loss.class_weights)")
    try:
        return build_loss(c.name, c.dice_weight, c.bce_weight, include_background=c.include_background,
                          deep_supervision=c.deep_supervision, skip_lowest=c.ds_skip_lowest,
                          focal_gamma=c.focal_gamma, tversky_alpha=c.tversky_alpha, tversky_beta=c.tversky_beta,
                          class_weights=c.class_weights, pos_weight=c.pos_weight)
    except ValueError as err:
        raise KansegError(f"loss: {err}") from None


def check_compile(cfg: TrainConfig, device: torch.device, distributed: bool) -> None:
    """One-line :class:`KansegError` when ``compile: true`` cannot work here (before anything is written)."""
    if not cfg.compile:
        return
    if distributed:
        raise KansegError("compile: true is not supported under torchrun yet; train without it")
    if cfg.loss.l1_activation or cfg.loss.l2_activation:
        raise KansegError("compile: true does not combine with loss.l1_activation / loss.l2_activation (they hook "
                          "every KAN conv); turn one of them off")
    if device.type == "cpu" and not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        raise KansegError("compile: true on CPU needs a C++ compiler (g++ or clang++) on PATH; install one or "
                          "train without compile")


def build_training(cfg: TrainConfig, model: nn.Module, device: torch.device, out_channels: int = 1):
    """Loss, optimiser, per-epoch schedule and gradient scaler of a run (``out_channels``: of the model)."""
    if cfg.amp == "fp16" and device.type != "cuda":
        raise KansegError("--amp fp16 needs a CUDA device; use --amp bf16 or --amp off on CPU")
    o = cfg.optim
    from kanseg.engine.penalties import with_penalties

    loss = with_penalties(build_loss_for(cfg, out_channels).to(device), model, cfg)
    optimizer = build_optimizer(model, o.name, o.lr, o.weight_decay, o.kan_lr, o.kan_weight_decay, o.kan_scope)
    scheduler = build_scheduler(optimizer, cfg.epochs, o.scheduler, o.min_lr, o.warmup_epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    return loss, optimizer, scheduler, scaler


def eval_options(cfg: TrainConfig, dataset: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`kanseg.engine.evaluate.evaluate_dataset` for this config and
    evaluation dataset (cases are batched only when the preprocessing resizes them to one size)."""
    same_size = dataset.preprocessing.get("image_size") is not None and cfg.data.patch_size is None
    return {
        "batch_size": cfg.batch_size if same_size else 1,
        "threshold": cfg.threshold,
        "roi_size": cfg.data.patch_size,
        "amp": cfg.amp,
        "ukan_batch_size": cfg.ukan_batch_size,
    }


def protocol_note(cfg: TrainConfig) -> str | None:
    """A line to print and store when the split reuses the validation set as the report set."""
    if cfg.data.split and cfg.data.split.startswith("legacy"):
        return (f"split {cfg.data.split} is the U-KAN legacy protocol: its 20% hold-out serves as both the "
                "validation (checkpoint selection) and the report set, as in the published tables")
    return None
