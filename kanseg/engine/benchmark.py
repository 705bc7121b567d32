"""``kanseg benchmark``: several models x several seeds, trained (or reused) and evaluated, then one
mean ± std table with parameters, FLOPs and inference throughput.

Runs live in ``OUT/<model>/seed<k>/``. A run whose ``config.yaml`` equals the requested config and
whose ``summary.json`` is complete is reused; one with a ``last.pt`` only is resumed; a run directory
holding a different config is an error (never overwritten).

A model is a preset name with optional ``model.kwargs`` overrides, ``unet-gram@base_width=4@depth=3``
(:func:`parse_model_spec`); its runs go to ``OUT/unet-gram@base_width=4@depth=3/seed<k>``. With
``match_params`` every model without its own ``base_width`` gets the base width whose parameter count is
closest to the first model's (budget matching by parameters; :func:`match_base_width`). With ``match_time``
every model without its own ``epochs`` setting gets the number of epochs whose training time equals the first
model's (budget matching by wall time; :func:`training_step_seconds` times both models in the same process, so the
ratio holds on a noisy machine, and :func:`match_epochs` counts the reference's data loading once for both).
Both may be combined: widths first, then epochs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kanseg.atomic import remove_stale_temps, write_text_atomic
from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.config import ModelSpec, TrainConfig, load_config, parse_model_spec
from kanseg.device import resolve_device
from kanseg.engine import setup
from kanseg.engine.evaluate import autocast, evaluate_run, final_logits
from kanseg.engine.runlog import RunLog, read_json, write_json
from kanseg.engine.trainer import train
from kanseg.errors import Interrupted, KansegError
from kanseg.metrics import format_mean_std as fmt

SCORES = {  # column -> (report block, metric); per-image ones are means over cases
    "dice": ("per_image", "dice"),
    "iou": ("per_image", "iou"),
    "hd95": ("per_image", "hd95"),
    "global_dice": ("global", "dice"),
    "global_iou": ("global", "iou"),
    "ukan_iou": ("ukan_compat", "iou"),
}
CLASS_SCORES = {k: SCORES[k] for k in ("dice", "iou", "hd95", "global_dice")}  # per foreground class
COSTS = ("train_time_s", "s_per_epoch", "peak_rss_mb")  # from each run's summary.json ["run"]


def match_base_width(name: str, kwargs: dict[str, Any], target: int, widths: range = range(1, 129)) -> int:
    """The ``base_width`` of preset ``name`` (other constructor arguments ``kwargs``) whose parameter count is
    closest to ``target`` (ties: the smaller width). Counting is monotone in the width, so the search stops
    once the count passes the target."""
    from kanseg.models import create_model

    best, best_gap = widths[0], None
    for width in widths:
        try:
            model = create_model(name, **{**kwargs, "base_width": width})
        except (ValueError, TypeError):  # e.g. a width the groups or the bottleneck cannot take
            continue
        gap = sum(p.numel() for p in model.parameters()) - target
        if best_gap is None or abs(gap) < abs(best_gap):
            best, best_gap = width, gap
        if gap > 0:
            break
    return best


def training_step_seconds(model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 8,
                          device: str | torch.device = "cpu", steps: int = 3) -> float:
    """Median seconds of one training step (forward, a mean loss, backward, Adam) on random
    ``(batch_size, *input_shape)`` batches, after one warm-up step. Data loading is not included."""
    device = torch.device(device)
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    x = torch.randn(batch_size, *input_shape, device=device)
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        final_logits(model(x)).float().mean().backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - started)
    return float(np.median(times))


def match_epochs(reference_seconds: float, seconds: float, epochs: int, *, reference_epoch_s: float | None = None,
                 batches: int | None = None) -> int:
    """Epochs for a model whose training step takes ``seconds`` so that its training time equals ``epochs`` epochs
    of a reference whose step takes ``reference_seconds`` (rounded, at least 1).

    With the reference run's measured seconds per epoch and its ``batches`` per epoch, the part of an epoch that is
    not the model's steps (data loading, augmentation, validation) is taken as the same for both models:
    ``overhead = reference_epoch_s - batches * reference_seconds`` (at least 0) and the model's epoch
    ``overhead + batches * seconds``. Without them, the plain ratio of step times, which gives the faster model
    too many epochs when data loading is a large part of an epoch."""
    overhead = max(0.0, reference_epoch_s - batches * reference_seconds) if reference_epoch_s and batches else 0.0
    steps = batches or 1
    return max(1, round(epochs * (overhead + steps * reference_seconds) / (overhead + steps * seconds)))


@torch.no_grad()
def images_per_second(model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 8,
                      device: str | torch.device = "cpu", amp: str = "off", repeats: int = 3) -> float:
    """Inference throughput: eval-mode forward passes of random ``(batch_size, *input_shape)`` batches."""
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn(batch_size, *input_shape, device=device)
    with autocast(device, amp):
        final_logits(model(x))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            final_logits(model(x))
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch_size * repeats / (time.perf_counter() - started)


def ensure_run(cfg: TrainConfig, subset: str, log: RunLog) -> dict[str, Any]:
    """Train / resume / reuse the run in ``cfg.out`` and make sure ``subset`` is evaluated; its summary."""
    run_dir = Path(cfg.out)
    if (run_dir / "config.yaml").is_file():
        stored = load_config(run_dir / "config.yaml")
        if setup.run_fingerprint(stored) != setup.run_fingerprint(cfg):
            raise KansegError(f"{run_dir} holds a run with a different config; choose another --out")
    summary_path = run_dir / "summary.json"
    finished = summary_path.is_file() and "run" in read_json(summary_path)
    if finished:
        log.info(f"reusing {run_dir}")
    else:
        train(cfg, resume=run_dir if (run_dir / "last.pt").is_file() else None)
    summary = read_json(summary_path)
    if subset not in summary:
        evaluate_run(run_dir, subset=subset, data_root=cfg.data.data_root, device=cfg.device, log=log)
        summary = read_json(summary_path)
    return summary


def _score(report: dict[str, Any], block: str, metric: str) -> float:
    value = report.get(block, {}).get(metric, float("nan"))
    value = value["mean"] if isinstance(value, dict) else value
    return float("nan") if value is None else float(value)


def _cost(run: dict[str, Any], key: str) -> float:
    value = run.get(key)
    return float("nan") if value is None else float(value)


def _over_seeds(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` over seeds, NaN-tolerant."""
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr).any()
    return {"mean": float(np.nanmean(arr)) if finite else float("nan"),
            "std": float(np.nanstd(arr)) if finite else float("nan"), "values": values}


def _matched(specs: list[ModelSpec], base: TrainConfig, reference_run: Path, log: RunLog) -> list[ModelSpec]:
    """``specs`` with a ``base_width`` for each model that has none, matched to the first model's parameters."""
    ckpt = load_checkpoint(reference_run / "best.pt")
    target = sum(p.numel() for p in build_model(ckpt, reference_run / "best.pt").parameters())
    data_kwargs = {k: ckpt["model"]["kwargs"][k] for k in ("spatial_dims", "in_channels", "out_channels")}
    matched = [specs[0]]
    for spec in specs[1:]:
        if "base_width" in spec.kwargs or "widths" in spec.kwargs:
            matched.append(spec)
            continue
        kwargs = {**spec.apply(base).model.kwargs, **data_kwargs}
        kwargs.pop("base_width", None)
        width = match_base_width(spec.name, kwargs, target)
        log.info(f"match-params: {spec.label} base_width={width} (reference {specs[0].label}, {target / 1e6:.3f} M)")
        matched.append(ModelSpec(spec.name, {**spec.kwargs, "base_width": width}, spec.settings))
    return matched


def _input_shape(base: TrainConfig, ckpt: dict[str, Any], why: str) -> tuple[int, ...]:
    """``(C, *S)`` a run trained on: its patch size or fixed image size; an error saying ``why`` it is needed."""
    pp = ckpt["preprocessing"]
    shape = (int(pp["in_channels"]), *(base.data.patch_size or pp["image_size"] or []))
    if len(shape) != int(pp["spatial_dims"]) + 1:
        raise KansegError(f"benchmark needs a fixed --image-size (or patch size) {why}")
    return shape


def _time_matched(specs: list[ModelSpec], base: TrainConfig, reference_run: Path, log: RunLog) -> list[ModelSpec]:
    """``specs`` with an ``epochs`` setting for each model that has none: the first model's training time."""
    ckpt = load_checkpoint(reference_run / "best.pt")
    shape = _input_shape(base, ckpt, "to time a training step (--match-time)")
    data_kwargs = {k: ckpt["model"]["kwargs"][k] for k in ("spatial_dims", "in_channels", "out_channels")}
    device = resolve_device(base.device)
    reference_epochs = specs[0].apply(base).epochs

    def seconds(spec: ModelSpec) -> float:
        from kanseg.models import create_model

        torch.manual_seed(0)
        model = create_model(spec.name, **{**spec.apply(base).model.kwargs, **data_kwargs})
        return training_step_seconds(model, shape, batch_size=base.batch_size, device=device)

    reference = seconds(specs[0])
    run = read_json(reference_run / "summary.json").get("run", {})  # ensure_run wrote it
    epoch_s, batches = run.get("s_per_epoch"), run.get("train_batches")
    how = (f"reference epoch {epoch_s:.1f} s of which {batches} steps" if epoch_s and batches
           else "step-time ratio only: the reference run records no train_batches")
    matched = [specs[0]]
    for spec in specs[1:]:
        if "epochs" in spec.settings:
            matched.append(spec)
            continue
        step = seconds(spec)
        epochs = match_epochs(reference, step, reference_epochs, reference_epoch_s=epoch_s, batches=batches)
        log.info(f"match-time: {spec.label} epochs={epochs} ({step * 1e3:.0f} ms/step against "
                 f"{reference * 1e3:.0f} ms/step of {specs[0].label} for {reference_epochs} epochs; {how})")
        matched.append(ModelSpec(spec.name, spec.kwargs, {**spec.settings, "epochs": epochs}))
    return matched


def run_benchmark(base: TrainConfig, models: list[str | ModelSpec], seeds: list[int], out: str | Path, *,
                  subset: str = "test", match_params: bool = False, match_time: bool = False,
                  log: RunLog | None = None) -> dict[str, Any]:
    """Every (model, seed) run of ``base``, then per model: params, FLOPs, images/s, training time, seconds per
    epoch, peak memory and the mean ± std over seeds of each score on ``subset``. Writes ``OUT/benchmark.json``
    and ``OUT/benchmark.md``. ``models``: preset names or specs (:func:`parse_model_spec`); ``match_params`` /
    ``match_time``: budget-match by parameter count / by training time (the first model is the reference)."""
    from kanseg.models.complexity import measure_complexity

    out, log = Path(out), log or RunLog(None)
    if not models or not seeds:
        raise KansegError("benchmark needs at least one model and one seed")
    specs = [m if isinstance(m, ModelSpec) else parse_model_spec(m) for m in models]
    remove_stale_temps(out)  # benchmark.json / .md of an earlier run killed while writing them
    reports: dict[tuple[str, int], dict[str, Any]] = {}
    costs: dict[tuple[str, int], dict[str, Any]] = {}
    runs = [(spec.label, seed) for spec in specs for seed in seeds]
    try:
        for index, spec in enumerate(specs):
            if index == 1 and (match_params or match_time):
                reference_run = out / specs[0].label / f"seed{seeds[0]}"
                if match_params:
                    specs[1:] = _matched(specs, base, reference_run, log)[1:]
                if match_time:
                    specs[1:] = _time_matched(specs, base, reference_run, log)[1:]
                runs = [(s.label, seed) for s in specs for seed in seeds]
                spec = specs[1]
            for seed in seeds:
                cfg = spec.apply(base)
                cfg.seed, cfg.out = seed, str(out / spec.label / f"seed{seed}")
                summary = ensure_run(cfg, subset, log)
                reports[spec.label, seed] = summary[subset]["report"]
                costs[spec.label, seed] = summary.get("run", {})
    except (KeyboardInterrupt, Interrupted) as err:
        if isinstance(err, Interrupted) and not str(err):  # a non-main process of a distributed run
            raise
        raise _interrupted(runs, list(reports), out) from None
    rows = []
    for spec in specs:
        name = spec.label
        scores: dict[str, list[float]] = {k: [] for k in SCORES}
        class_scores: dict[str, dict[str, list[float]]] = {}  # multi-class: class -> metric -> per seed
        for seed in seeds:
            for key, (block, metric) in SCORES.items():
                scores[key].append(_score(reports[name, seed], block, metric))
            for cls, class_report in reports[name, seed].get("per_class", {}).items():
                for key, (block, metric) in CLASS_SCORES.items():
                    class_scores.setdefault(cls, {}).setdefault(key, []).append(_score(class_report, block, metric))
        ckpt = load_checkpoint(out / name / f"seed{seeds[0]}" / "best.pt")
        shape = _input_shape(base, ckpt, "to count FLOPs")
        model = build_model(ckpt, out / name / f"seed{seeds[0]}" / "best.pt")
        cost = measure_complexity(model, shape)
        device = resolve_device(base.device).type
        row: dict[str, Any] = {"model": name, "preset": spec.name, "model_kwargs": dict(spec.kwargs),
                               "settings": dict(spec.settings), "epochs": spec.apply(base).epochs,
                               "params": cost.params, "flops": cost.flops, "input_shape": list(shape),
                               "images_per_s": images_per_second(model, shape, batch_size=base.batch_size,
                                                                 device=device, amp=base.amp),
                               "device": device, "seeds": list(seeds)}
        row.update({key: _over_seeds(values) for key, values in scores.items()})
        row.update({key: _over_seeds([_cost(costs[name, seed], key) for seed in seeds]) for key in COSTS})
        if class_scores:
            row["per_class"] = {cls: {key: _over_seeds(values) for key, values in by_metric.items()}
                                for cls, by_metric in class_scores.items()}
        rows.append(row)
    result = {"dataset": base.data.dataset, "split": base.data.split, "subset": subset, "epochs": base.epochs,
              "match_params": match_params, "match_time": match_time,
              "aggregation": "mean ± std over seeds of: per-image mean Dice / IoU / HD95 at native resolution; "
                             "global (pooled TP/FP/FN) IoU; ukan-compat IoU (published-table protocol only)",
              "rows": rows}
    if any("per_class" in r for r in rows):
        result["aggregation"] += "; multi-class: means over the foreground classes, then one row per class"
    table = format_table(result)
    write_json(out / "benchmark.json", result)
    write_text_atomic(out / "benchmark.md", table + "\n")
    log.info(table)
    return result


def _interrupted(runs: list[tuple[str, int]], finished: list[tuple[str, int]], out: Path) -> Interrupted:
    """Ctrl-C: which runs finished, which did not, and how to go on."""
    names = lambda pairs: ", ".join(f"{m}/seed{s}" for m, s in pairs) or "none"  # noqa: E731
    left = [r for r in runs if r not in finished]
    return Interrupted(f"benchmark interrupted (Ctrl-C) during {left[0][0]}/seed{left[0][1]}: "
                       f"finished {names(finished)}; not finished {names(left)} (runs in {out}); "
                       "run the same command again to continue "
                       "(finished runs are reused, an interrupted one resumes from its last.pt)")


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of :func:`run_benchmark`'s result."""
    rows = result["rows"]
    shape = "x".join(str(s) for s in rows[0]["input_shape"]) if rows else "?"
    head = (f"{result['dataset']} / split {result['split'] or 'default'} / {result['subset']}, "
            f"{len(rows[0]['seeds']) if rows else 0} seed(s), {result['epochs']} epochs; {result['aggregation']}")
    lines = [head, "",
             f"| model | params (M) | GFLOPs @ {shape} | images/s | train time (min) | s/epoch | peak RSS (GB) "
             "| Dice | IoU | HD95 | global IoU | ukan-compat IoU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [fmt(r.get(k), 4) for k in ("dice", "iou")] + [fmt(r.get("hd95"), 2)]
        cells += [fmt(r.get(k), 4) for k in ("global_iou", "ukan_iou")]  # ukan: binary data only
        spent = [fmt(r.get("train_time_s"), 1, 1 / 60), fmt(r.get("s_per_epoch"), 1),
                 fmt(r.get("peak_rss_mb"), 2, 1 / 1024)]
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.3f} | {r['flops'] / 1e9:.3f} | "
                     f"{r['images_per_s']:.1f} ({r['device']}) | " + " | ".join(spent + cells) + " |")
    if any("per_class" in r for r in rows):
        lines += ["", "Per class (mean ± std over seeds):", "",
                  "| model | class | Dice | IoU | HD95 | global Dice |", "|---|---|---|---|---|---|"]
        for r in rows:
            for cls, s in r.get("per_class", {}).items():
                cells = [fmt(s[k], 4) for k in ("dice", "iou")] + [fmt(s["hd95"], 2), fmt(s["global_dice"], 4)]
                lines.append(f"| {r['model']} | {cls} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
