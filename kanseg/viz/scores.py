"""Per-case and aggregate score tables of several models evaluated on the same cases.

An *evaluation entry* is what :func:`kanseg.engine.evaluate_run` returns (and ``summary.json[subset]`` holds):
``{"report": {...}, "cases": [{"id", "index", "dice", "iou", "hd95", ...}, ...]}``. Tables are plain lists of
dicts (no pandas) and render to Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from kanseg.errors import KansegError

CASE_METRICS = ("dice", "iou", "hd95")


def case_table(entries: Mapping[str, Mapping[str, Any]], metric: str = "dice") -> list[dict[str, Any]]:
    """One row per case: ``{"id", "index", <model>: score, ..., "mean": mean over models}``, in dataset order.

    Raises :class:`KansegError` for an unknown metric or when the models were not scored on the same cases.
    """
    if metric not in CASE_METRICS:
        raise KansegError(f"unknown case metric {metric!r}; valid: {', '.join(CASE_METRICS)}")
    if not entries:
        raise KansegError("no evaluation entries to tabulate")
    per_model = {name: {str(r["id"]): r for r in entry["cases"]} for name, entry in entries.items()}
    first_name, first = next(iter(per_model.items()))
    for name, cases in per_model.items():
        if set(cases) != set(first):
            raise KansegError(f"{name!r} and {first_name!r} were scored on different cases; evaluate them on the "
                              "same subset")
    rows = []
    for case_id, ref in sorted(first.items(), key=lambda item: item[1]["index"]):
        row: dict[str, Any] = {"id": case_id, "index": ref["index"]}
        scores = [float(per_model[name][case_id][metric]) for name in per_model]
        row.update(zip(per_model, scores))
        row["mean"] = math.fsum(scores) / len(scores)
        rows.append(row)
    return rows


def best_and_worst(rows: Sequence[Mapping[str, Any]], key: str = "mean", k: int = 3,
                   higher_is_better: bool = True) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The ``k`` best and ``k`` worst rows of a :func:`case_table` by column ``key`` (a model or ``"mean"``).

    Ties keep dataset order; with fewer than 2·k rows the two lists overlap.
    """
    if rows and key not in rows[0]:
        valid = [c for c in rows[0] if c not in ("id", "index")]
        raise KansegError(f"unknown column {key!r}; valid: {', '.join(valid)}")
    ordered = sorted(rows, key=lambda r: -r[key] if higher_is_better else r[key])
    return list(ordered[:k]), list(reversed(ordered[-k:]))


def _mean_std(block: Mapping[str, Any], metric: str) -> str:
    value = block.get(metric)
    if isinstance(value, Mapping):
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    return "n/a" if value is None else f"{float(value):.4f}"


def metrics_rows(entries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model of its report: per-image Dice / IoU / HD95 (mean ± std over cases), global Dice / IoU."""
    rows = []
    for name, entry in entries.items():
        report = entry["report"]
        per_image, pooled = report["per_image"], report["global"]
        rows.append({"model": name, "cases": report["n_cases"],
                     "Dice (per-image)": _mean_std(per_image, "dice"), "IoU (per-image)": _mean_std(per_image, "iou"),
                     "HD95 px (per-image)": _mean_std(per_image, "hd95"),
                     "Dice (global)": _mean_std(pooled, "dice"), "IoU (global)": _mean_std(pooled, "iou")})
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                   digits: int = 4) -> str:
    """Markdown table of ``rows`` (floats rounded to ``digits``); ``columns`` default to the first row's keys."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
