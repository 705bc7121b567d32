"""Evaluation loop: model -> per-case rows (native resolution) -> report, sharded over DDP ranks.

Each rank scores every ``world_size``-th case; rows are gathered, so every rank ends with the same
report and it equals a single-process evaluation (the ukan-compat batches are rebuilt from the
gathered rows in dataset order, not from the shards).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.config import load_config
from kanseg.engine import setup
from kanseg.engine.distributed import DistributedContext, all_gather_objects, init_distributed
from kanseg.engine.runlog import RunLog, read_json, write_json
from kanseg.errors import KansegError
from kanseg.inference.predictor import resize_probabilities
from kanseg.inference.sliding_window import DEFAULT_OVERLAP, sliding_window_logits
from kanseg.metrics import case_metrics, is_multiclass, model_overlap, summarize

AMP_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast(device: torch.device, amp: str):
    """Autocast context for ``amp`` in {"off", "fp16", "bf16"}."""
    dtype = AMP_DTYPES[amp]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def final_logits(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The final logits of a model output (deep-supervision lists put the final map first)."""
    return output if isinstance(output, torch.Tensor) else output[0]


# Windows per forward pass when validating 3D volumes (prediction's default is 4): validation runs next to
# the training state, so it keeps the window batch small.
EVAL_SW_BATCH_SIZE = 2


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    roi_size: Sequence[int] | None = None,
    amp: str = "off",
    overlap: float = DEFAULT_OVERLAP,
    sw_batch_size: int = EVAL_SW_BATCH_SIZE,
) -> torch.Tensor:
    """(B, C, *S) -> fp32 logits (B, C_out, *S): one forward pass, or Gaussian-blended sliding windows
    of ``roi_size`` (for 3D volumes trained on patches; see
    :func:`kanseg.inference.sliding_window.sliding_window_logits`)."""
    with autocast(images.device, amp):
        if roi_size is None:
            logits = final_logits(model(images))
        else:
            # windows stay in the autocast dtype until blended (a WindowPredictor would cast each to fp32)
            logits = sliding_window_logits(images, lambda x: final_logits(model(x)), roi_size,
                                           overlap=overlap, sw_batch_size=sw_batch_size)
    return logits.float()


def class_names(dataset: Any) -> list[str] | None:
    """The dataset's class names in label order (background first), None for binary datasets."""
    names = getattr(dataset, "class_names", None) or dataset.preprocessing.get("classes")
    return list(names) if is_multiclass(names) else None


def evaluate_cases(
    model: nn.Module,
    dataset: Any,
    ctx: DistributedContext,
    *,
    batch_size: int = 1,
    threshold: float = 0.5,
    roi_size: Sequence[int] | None = None,
    overlap: float = DEFAULT_OVERLAP,
    sw_batch_size: int = EVAL_SW_BATCH_SIZE,
    amp: str = "off",
    with_hd95: bool = True,
    log: RunLog | None = None,
) -> list[dict[str, Any]]:
    """Case rows of this rank's share of ``dataset`` (see :mod:`kanseg.metrics` for the row layout).

    ``dataset`` follows the kanseg.data contract: items ``{"image", "label", "id"}`` at model
    resolution and ``native_label(i)`` at native resolution. Cases of different sizes need
    ``batch_size=1``. ``roi_size``, ``overlap``, ``sw_batch_size``: sliding windows (see :func:`predict_logits`).
    Probabilities go back to the native grid first (``dataset.to_native`` when the dataset has it, else a linear
    resize); then binary models: sigmoid > ``threshold``, multi-class models (one channel per class): argmax of
    the softmax.
    """
    mine = list(range(ctx.rank, len(dataset), ctx.world_size))
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    names = class_names(dataset)
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    bar = (log or RunLog(None, enabled=False)).bar(batches, total=len(batches), desc="evaluate")
    for batch in bar:
        items = [dataset[i] for i in batch]
        images = torch.stack([torch.as_tensor(it["image"]) for it in items]).to(ctx.device)
        logits = predict_logits(model, images, roi_size=roi_size, amp=amp, overlap=overlap, sw_batch_size=sw_batch_size)
        probs = (torch.sigmoid(logits) if names is None else torch.softmax(logits, dim=1)).cpu()
        if names is None:
            labels = torch.stack([torch.as_tensor(it["label"]) for it in items]) > 0.5
            inter, union = model_overlap(probs > threshold, labels)
        for k, index in enumerate(batch):
            native = dataset.native_label(index)
            if hasattr(dataset, "to_native"):  # undoes the dataset's resize / reorientation / resampling
                prob = dataset.to_native(index, probs[k])
            else:
                prob = resize_probabilities(probs[k], native.shape)
            prob = prob[0] if prob.shape[0] == 1 else prob
            pred = prob > threshold if names is None else prob.argmax(dim=0)
            spacing = dataset.spacing(index) if with_hd95 and hasattr(dataset, "spacing") else None
            row = {"id": str(items[k]["id"]), "index": index}
            row.update(case_metrics(pred, torch.as_tensor(native), spacing=spacing, with_hd95=with_hd95,
                                    class_names=names))
            if names is None:  # ukan-compat is a binary protocol
                row.update(model_intersection=inter[k], model_union=union[k])
            rows.append(row)
    model.train(was_training)
    return rows


def evaluate_dataset(
    model: nn.Module, dataset: Any, ctx: DistributedContext, *, ukan_batch_size: int = 8, **kwargs: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All ranks' rows (sorted by dataset index) and their :func:`kanseg.metrics.summarize` report."""
    shards = all_gather_objects(ctx, evaluate_cases(model, dataset, ctx, **kwargs))
    rows = sorted((row for shard in shards for row in shard), key=lambda r: r["index"])
    return rows, summarize(rows, ukan_batch_size=ukan_batch_size)


def evaluate_run(
    run_dir: str | Path,
    *,
    subset: str = "test",
    data_root: str | None = None,
    checkpoint: str = "best",
    device: str = "auto",
    log: RunLog | None = None,
) -> dict[str, Any]:
    """Evaluate ``RUN_DIR/<checkpoint>.pt`` on ``subset`` of the run's dataset and record the result
    under ``summary.json[subset]`` (other entries kept). Returns that entry:
    ``{"checkpoint", "epoch", "report", "cases"}``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise KansegError(f"{run_dir} is not a kanseg run directory (no config.yaml)")
    if checkpoint not in ("best", "last"):
        raise KansegError(f"unknown checkpoint {checkpoint!r}; valid: best, last")
    cfg = load_config(run_dir / "config.yaml", {"data.data_root": data_root, "device": device})
    ckpt = load_checkpoint(run_dir / f"{checkpoint}.pt")
    dataset = setup.build_datasets(cfg, (subset,))[subset]
    if dataset.preprocessing != ckpt["preprocessing"]:
        raise KansegError(f"the data's preprocessing {dataset.preprocessing} differs from the checkpoint's "
                          f"{ckpt['preprocessing']}")
    ctx = init_distributed(cfg.device)
    model = build_model(ckpt, run_dir / f"{checkpoint}.pt").to(ctx.device)
    rows, report = evaluate_dataset(model, dataset, ctx, with_hd95=True, log=log, **setup.eval_options(cfg, dataset))
    entry = {"checkpoint": f"{checkpoint}.pt", "epoch": ckpt.get("epoch"), "report": report, "cases": rows}
    if ctx.is_main:
        summary_path = run_dir / "summary.json"
        summary = read_json(summary_path) if summary_path.is_file() else {}
        summary[subset] = entry
        write_json(summary_path, summary)
    return entry
