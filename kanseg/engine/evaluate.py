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
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from torch import nn

from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.config import load_config
from kanseg.engine import setup
from kanseg.engine.distributed import DistributedContext, all_gather_objects, init_distributed
from kanseg.engine.runlog import RunLog, read_json, write_json
from kanseg.errors import KansegError
from kanseg.metrics import case_metrics, model_overlap, summarize

AMP_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast(device: torch.device, amp: str):
    """Autocast context for ``amp`` in {"off", "fp16", "bf16"}."""
    dtype = AMP_DTYPES[amp]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def final_logits(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The final logits of a model output (deep-supervision lists put the final map first)."""
    return output if isinstance(output, torch.Tensor) else output[0]


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: torch.Tensor, *, roi_size: Sequence[int] | None = None, amp: str = "off"
) -> torch.Tensor:
    """(B, C, *S) -> fp32 logits (B, 1, *S): one forward pass, or Gaussian-blended sliding windows
    of ``roi_size`` (for 3D volumes trained on patches)."""
    with autocast(images.device, amp):
        if roi_size is None:
            logits = final_logits(model(images))
        else:
            logits = sliding_window_inference(
                images, list(roi_size), sw_batch_size=2, predictor=lambda x: final_logits(model(x)),
                overlap=0.5, mode="gaussian",
            )
    return logits.float()


def _native_probability(prob: torch.Tensor, native_shape: Sequence[int]) -> torch.Tensor:
    """(1, 1, *S) probabilities -> (*native_shape), linear interpolation when the sizes differ."""
    if tuple(prob.shape[2:]) != tuple(native_shape):
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[prob.ndim - 2]
        prob = F.interpolate(prob, size=tuple(native_shape), mode=mode, align_corners=False)
    return prob[0, 0]


def evaluate_cases(
    model: nn.Module,
    dataset: Any,
    ctx: DistributedContext,
    *,
    batch_size: int = 1,
    threshold: float = 0.5,
    roi_size: Sequence[int] | None = None,
    amp: str = "off",
    with_hd95: bool = True,
    log: RunLog | None = None,
) -> list[dict[str, Any]]:
    """Case rows of this rank's share of ``dataset`` (see :mod:`kanseg.metrics` for the row layout).

    ``dataset`` follows the kanseg.data contract: items ``{"image", "label", "id"}`` at model
    resolution and ``native_label(i)`` at native resolution. Cases of different sizes need
    ``batch_size=1``.
    """
    mine = list(range(ctx.rank, len(dataset), ctx.world_size))
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    bar = (log or RunLog(None, enabled=False)).bar(batches, total=len(batches), desc="evaluate")
    for batch in bar:
        items = [dataset[i] for i in batch]
        images = torch.stack([torch.as_tensor(it["image"]) for it in items]).to(ctx.device)
        labels = torch.stack([torch.as_tensor(it["label"]) for it in items]) > 0.5
        probs = torch.sigmoid(predict_logits(model, images, roi_size=roi_size, amp=amp)).cpu()
        inter, union = model_overlap(probs > threshold, labels)
        for k, index in enumerate(batch):
            native = dataset.native_label(index)
            pred = _native_probability(probs[k : k + 1], native.shape) > threshold
            spacing = dataset.spacing(index) if with_hd95 and hasattr(dataset, "spacing") else None
            row = {"id": str(items[k]["id"]), "index": index}
            row.update(case_metrics(pred, torch.as_tensor(native), spacing=spacing, with_hd95=with_hd95))
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
