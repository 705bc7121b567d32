"""Segmentation metrics (MONAI underneath), binary and per class, with every aggregation named.

One *case row* per image (or volume) holds what all aggregations need::

    {"id": "12", "index": 3, "dice": 0.91, "iou": 0.83, "hd95": 4.1,
     "tp": 812, "fp": 40, "fn": 121,                # native resolution, for the global scores
     "model_intersection": 700, "model_union": 845} # model resolution, for ukan-compat (binary only)

Multi-class rows (``class_names`` given, more than one foreground class) score each foreground class
as its own binary mask (class k against the rest) with the same rules and add
``"per_class": {"anterior": {"dice", "iou", "hd95", "tp", "fp", "fn"}, ...}``; their top-level
``dice`` / ``iou`` / ``hd95`` are the means over the foreground classes (so ``monitor: dice`` means
mean foreground Dice) and ``tp`` / ``fp`` / ``fn`` the sums over them.

:func:`case_metrics` builds the native-resolution part from a predicted and a true mask,
:func:`summarize` turns rows into the report. Aggregations (each labelled in the report):

- ``per_image``: mean (and std) over cases of Dice / IoU / HD95 at native resolution.
  Empty ground truth and empty prediction = 1, empty GT with a non-empty prediction = 0
  (MONAI ``ignore_empty=False``). HD95 = 0 when both masks are empty and the image diagonal
  (in the spacing's unit) when exactly one is empty.
- ``global``: Dice / IoU from the TP / FP / FN summed over the whole set.
- ``ukan_compat``: the U-KAN papers' number, for comparing with published tables only: IoU pooled
  over each batch of ``batch_size`` cases in dataset order, ``(I + 1e-5) / (U + 1e-5)``, per-batch
  Dice = 2·IoU / (1 + IoU), both averaged over batches weighted by batch length (U-KAN's
  ``AverageMeter``), at model input resolution. Binary tasks only.
- ``per_class`` (multi-class): each block above per foreground class; the top-level ``per_image``
  is the mean over cases of the per-case foreground means, the top-level ``global`` the mean over
  foreground classes of the per-class pooled scores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, get_confusion_matrix

UKAN_SMOOTH = 1e-5
AGGREGATIONS = {
    "per_image": "mean over cases at native resolution (empty GT + empty prediction = 1)",
    "global": "dataset-level TP/FP/FN pooled over all cases at native resolution",
    "ukan_compat": "U-KAN style: IoU pooled per batch of {batch} in dataset order at model resolution, "
    "batch-size weighted mean over batches; Dice = 2I/(1+I); for comparison with published tables only",
    "per_class": "each foreground class scored as a binary mask (class vs rest) with the rules above; "
    "the per-image and global rows are means over the foreground classes",
}
HD95_EMPTY_RULE = "0 when prediction and ground truth are both empty; image diagonal when only one is empty"


def _as_case_tensor(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(*spatial) bool-like -> (1, 1, *spatial) float tensor of 0/1."""
    tensor = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    return (tensor > 0).float().reshape(1, 1, *tensor.shape)


def hd95(pred: torch.Tensor, gt: torch.Tensor, spacing: Sequence[float] | None = None) -> float:
    """95th percentile symmetric Hausdorff distance of two (1, 1, *spatial) binary masks.

    In pixels (or the spacing's unit). Empty masks follow :data:`HD95_EMPTY_RULE`.
    """
    pred_empty, gt_empty = not bool(pred.any()), not bool(gt.any())
    if pred_empty and gt_empty:
        return 0.0
    if pred_empty or gt_empty:
        steps = spacing if spacing is not None else [1.0] * (pred.ndim - 2)
        return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(pred.shape[2:], steps))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = compute_hausdorff_distance(
            pred, gt, include_background=True, percentile=95,
            spacing=list(spacing) if spacing is not None else None,
        )
    return float(value.item())


def binary_metrics(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, *, spacing: Sequence[float] | None = None,
    with_hd95: bool = True,
) -> dict[str, float | int]:
    """``{"dice", "iou", "hd95", "tp", "fp", "fn"}`` of two same-shape masks (anything > 0 is foreground)."""
    p, g = _as_case_tensor(pred), _as_case_tensor(gt)
    tp, fp, _, fn = (int(v) for v in get_confusion_matrix(p, g, include_background=True)[0, 0])
    return {
        "dice": float(compute_dice(p, g, include_background=True, ignore_empty=False).item()),
        "iou": float(compute_iou(p, g, include_background=True, ignore_empty=False).item()),
        "hd95": hd95(p, g, spacing) if with_hd95 else float("nan"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def is_multiclass(class_names: Sequence[str] | None) -> bool:
    """True for more than one foreground class (names in label order, background first). The one definition of
    the rule; :func:`kanseg.data.labels.is_multiclass` applies it to a preprocessing record."""
    return class_names is not None and len(class_names) > 2


def case_metrics(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    *,
    spacing: Sequence[float] | None = None,
    with_hd95: bool = True,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Native-resolution metrics of one case.

    Args:
        pred: predicted mask (*spatial): anything > 0 is foreground (binary), or class indices.
        gt: ground-truth mask (*spatial), same shape and kind.
        spacing: physical size of a pixel / voxel per axis (HD95 unit); None = pixels.
        with_hd95: HD95 is the slow part; skip it (value NaN) during training-time validation.
        class_names: the K class names in label order, background first. With more than one
            foreground class, ``pred`` and ``gt`` hold class indices 0..K-1 and every foreground
            class is scored on its own; None (or K = 2) = binary.

    Returns:
        ``{"dice", "iou", "hd95", "tp", "fp", "fn"}``, plus ``"per_class": {name: {same keys}}``
        for several foreground classes (top-level values: means / sums over foreground classes).
    """
    if tuple(np.shape(pred)) != tuple(np.shape(gt)):
        raise ValueError(f"prediction shape {tuple(np.shape(pred))} != ground truth shape {tuple(np.shape(gt))}")
    if not is_multiclass(class_names):
        return binary_metrics(pred, gt, spacing=spacing, with_hd95=with_hd95)
    p, g = (torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m) for m in (pred, gt))
    per_class = {name: binary_metrics(p == k, g == k, spacing=spacing, with_hd95=with_hd95)
                 for k, name in enumerate(class_names) if k > 0}
    row: dict[str, Any] = {m: float(np.mean([c[m] for c in per_class.values()])) for m in ("dice", "iou", "hd95")}
    row.update({m: sum(c[m] for c in per_class.values()) for m in ("tp", "fp", "fn")})
    row["per_class"] = per_class
    return row


def model_overlap(pred: torch.Tensor, gt: torch.Tensor) -> tuple[list[int], list[int]]:
    """Per-case intersection and union of binary masks (B, 1, *spatial) at model resolution."""
    p, g = pred.bool().flatten(1), gt.bool().flatten(1)
    return (p & g).sum(1).tolist(), (p | g).sum(1).tolist()


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(arr.mean()), "std": float(arr.std())}


def ukan_compat(rows: Sequence[dict[str, Any]], batch_size: int = 8) -> dict[str, float]:
    """U-KAN pooled IoU / Dice over consecutive batches of ``batch_size`` rows (sorted by ``index``)."""
    ordered = sorted(rows, key=lambda r: r["index"])
    total, iou_sum, dice_sum = 0, 0.0, 0.0
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        inter = sum(r["model_intersection"] for r in batch)
        union = sum(r["model_union"] for r in batch)
        iou = (inter + UKAN_SMOOTH) / (union + UKAN_SMOOTH)
        iou_sum += iou * len(batch)
        dice_sum += 2 * iou / (iou + 1) * len(batch)
        total += len(batch)
    if total == 0:
        return {"iou": float("nan"), "dice": float("nan")}
    return {"iou": iou_sum / total, "dice": dice_sum / total}


def _pooled(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Dice / IoU from the TP / FP / FN summed over ``rows`` (1 when all are zero)."""
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    denom = tp + fp + fn
    return {"dice": 2 * tp / (2 * tp + fp + fn) if denom else 1.0, "iou": tp / denom if denom else 1.0}


def _scores(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"per_image": {k: _mean_std([r[k] for r in rows]) for k in ("dice", "iou", "hd95")},
            "global": _pooled(rows)}


def summarize(rows: Sequence[dict[str, Any]], *, ukan_batch_size: int = 8) -> dict[str, Any]:
    """Aggregate case rows into the report dict (each block names its aggregation).

    Returns:
        ``{"n_cases", "per_image": {"dice": {"mean","std"}, "iou": ..., "hd95": ...},
        "global": {"dice", "iou"}, "ukan_compat": {"dice", "iou"} (if model overlaps are present),
        "aggregations": {...}, "hd95_empty_rule": str}``; multi-class rows add
        ``"classes": [foreground names]`` and ``"per_class": {name: {"per_image": ..., "global": ...}}``
        (the top-level blocks are then means over the foreground classes).
    """
    rows = list(rows)
    report: dict[str, Any] = {"n_cases": len(rows), **_scores(rows)}
    aggregations = {k: v for k, v in AGGREGATIONS.items() if k not in ("ukan_compat", "per_class")}
    classes = list(rows[0]["per_class"]) if rows and "per_class" in rows[0] else []
    if classes:
        per_class = {name: _scores([r["per_class"][name] for r in rows]) for name in classes}
        report["global"] = {k: float(np.mean([c["global"][k] for c in per_class.values()])) for k in ("dice", "iou")}
        report["classes"], report["per_class"] = classes, per_class
        aggregations["per_class"] = AGGREGATIONS["per_class"]
    if rows and all("model_intersection" in r for r in rows):
        report["ukan_compat"] = ukan_compat(rows, ukan_batch_size)
        aggregations["ukan_compat"] = AGGREGATIONS["ukan_compat"].format(batch=ukan_batch_size)
    report["aggregations"] = aggregations
    report["hd95_empty_rule"] = HD95_EMPTY_RULE
    return report


MONITORS = {
    "dice": ("per_image", "dice", "mean"),
    "iou": ("per_image", "iou", "mean"),
    "global_dice": ("global", "dice"),
    "global_iou": ("global", "iou"),
    "ukan_dice": ("ukan_compat", "dice"),
    "ukan_iou": ("ukan_compat", "iou"),
}


def monitor_value(report: dict[str, Any], name: str) -> float:
    """The scalar named ``name`` (one of :data:`MONITORS`) from a :func:`summarize` report."""
    if name not in MONITORS:
        raise ValueError(f"unknown monitor {name!r}; valid: {', '.join(MONITORS)}")
    value: Any = report
    for key in MONITORS[name]:
        value = value[key]
    return float(value)


def format_mean_std(stat: dict[str, Any] | None, digits: int, scale: float = 1.0) -> str:
    """``"mean ± std"`` of a ``{"mean", "std"}`` entry (both times ``scale``); ``-`` where absent or NaN (costs
    of runs from before kanseg recorded them, the binary-only ukan-compat scores of multi-class data)."""
    if not stat or not np.isfinite(stat.get("mean", float("nan"))):
        return "-"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A small printed table of a :func:`summarize` report, one line per aggregation."""
    pi = report["per_image"]
    lines = [title] if title else []
    lines.append(f"{'aggregation':<13} {'Dice':>15} {'IoU':>15} {'HD95':>15}   (n={report['n_cases']})")
    lines.append(
        f"{'per-image':<13} {pi['dice']['mean']:>8.4f}±{pi['dice']['std']:<6.4f} "
        f"{pi['iou']['mean']:>8.4f}±{pi['iou']['std']:<6.4f} {pi['hd95']['mean']:>8.2f}±{pi['hd95']['std']:<6.2f}"
    )
    lines.append(f"{'global':<13} {report['global']['dice']:>15.4f} {report['global']['iou']:>15.4f}")
    if "ukan_compat" in report:
        uk = report["ukan_compat"]
        lines.append(f"{'ukan-compat':<13} {uk['dice']:>15.4f} {uk['iou']:>15.4f}   (published-table protocol only)")
    if "per_class" in report:
        lines.append(f"{'class':<13} {'per-image Dice':>15} {'per-image IoU':>15} {'HD95':>15} "
                     f"{'global Dice':>12} {'global IoU':>12}")
        for name, block in report["per_class"].items():
            s = block["per_image"]
            lines.append(
                f"{name[:13]:<13} {s['dice']['mean']:>8.4f}±{s['dice']['std']:<6.4f} "
                f"{s['iou']['mean']:>8.4f}±{s['iou']['std']:<6.4f} "
                f"{s['hd95']['mean']:>8.2f}±{s['hd95']['std']:<6.2f} "
                f"{block['global']['dice']:>12.4f} {block['global']['iou']:>12.4f}"
            )
    names = {"per_image": "per-image", "global": "global", "ukan_compat": "ukan-compat", "per_class": "per-class"}
    lines += [f"  {names[key]}: {text}" for key, text in report["aggregations"].items()]
    lines.append(f"  HD95 in pixels (mm when the data has a spacing): {report['hd95_empty_rule']}")
    return "\n".join(lines)
