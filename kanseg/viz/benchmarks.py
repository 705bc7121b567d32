"""Tables and plots of the JSON results in ``benchmarks/results/`` (what ``benchmarks/README.md`` shows).

Four kinds of result, told apart by their keys (each file names the machine it ran on):

- ``layers``: ``benchmarks/layers.py``, one KAN layer per family against a plain conv (params, time, saved bytes);
- ``kernels``: ``benchmarks/kernels.py``, eager / ``torch.compile`` / fused kernels (saved MiB, time, peak);
- ``predict-memory``: ``benchmarks/predict_memory.py``, peak RSS of sliding-window prediction on big volumes;
- ``training``: :func:`kanseg.engine.run_benchmark` (``kanseg benchmark``, ``scripts/report_cvc.py``);
- ``transfer``: ``benchmarks/transfer_peft.py``, adaptation to held-out data with a few labelled frames.

:func:`plot_pareto` draws test Dice against training time for one or more training results, with the Pareto front.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kanseg.errors import KansegError
from kanseg.metrics import format_mean_std as _ms
from kanseg.viz.figures import new_figure
from kanseg.viz.scores import markdown_table


def result_kind(result: dict[str, Any]) -> str:
    """``"layers"``, ``"kernels"``, ``"predict-memory"``, ``"model-memory"``, ``"conv-backward"``, ``"step3d"`` or
    ``"training"``; ``KansegError`` for anything else."""
    if "cases" in result:
        return "layers"
    if "shots" in result:
        return "transfer"
    if "speedup" in (result.get("entries") or [{}])[0]:
        return "conv-backward"
    if "routes" in result:
        return "step3d"
    rows = result.get("rows") or [{}]
    if "results" in result:
        return "predict-memory"
    if "family" in rows[0]:
        return "kernels"
    if "saved_ratio" in rows[0]:
        return "model-memory"
    if "model" in rows[0]:
        return "training"
    raise KansegError(f"unknown benchmark result (keys: {', '.join(sorted(result))}); valid kinds: "
                      f"{', '.join(MARKDOWN)}")


def load_results(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` result in ``folder`` by file name (sorted); unreadable or unknown files are skipped."""
    results = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            result = json.loads(path.read_text())
            result_kind(result)
        except (OSError, ValueError, KansegError, AttributeError):
            continue
        results[path.name] = result
    return results


# --- markdown ---------------------------------------------------------------------------------------------------
def layers_markdown(result: dict[str, Any]) -> str:
    parts = []
    for name, case in result["cases"].items():
        nd, c = case["nd"], case["channels"]
        spread = case.get("conv_ms_range")
        parts.append(f"{name}: {c}→{c}, 3^{nd} kernel, batch {case['batch']}, {case['size']}^{nd} input, "
                     f"kernels={result.get('kernels', '?')}"
                     + (f" (plain conv {spread[0]}–{spread[1]} ms over the run; its median is the yardstick)"
                        if spread else ""))
        extra = [m for m in result.get("modes", [])[1:]]
        rows = []
        for r in case["rows"]:
            out = {"layer": r["layer"], "params": r["params"], "fwd+bwd ms": r["fwd_bwd_ms"],
                   "× conv time": r["time_vs_conv"], "saved MiB": r["saved_MiB"], "× conv saved": r["saved_vs_conv"]}
            for m in extra:
                out[f"{m} ms"] = r.get(f"{m}_fwd_bwd_ms", "")
                out[f"{m} × conv"] = r.get(f"{m}_time_vs_conv", "")
                out[f"{m} saved MiB"] = r.get(f"{m}_saved_MiB", "")
            if "compile" in extra:
                out["compile s (once)"] = r.get("compile_s", "")
            rows.append(out)
        parts.append(markdown_table(rows, digits=2))
    return "\n\n".join(parts)


def kernels_markdown(result: dict[str, Any]) -> str:
    columns = {"family": "family", "shape": "shape", "plain_saved_mib": "plain conv saved MiB",
               "eager_saved_mib": "eager saved MiB", "fused_saved_mib": "fused saved MiB",
               "eager_ms": "eager ms", "compile_ms": "compile ms", "fused_ms": "fused ms",
               "eager_peak_mib": "eager peak MiB", "fused_peak_mib": "fused peak MiB", "expand_gbps": "expand GB/s"}
    present = [k for k in columns if any(k in r for r in result["rows"])]
    rows = [{columns[k]: r.get(k, "") for k in present} for r in result["rows"]]
    head = (f"saved MiB at full size (exact, fake tensors); times on inputs scaled by {result.get('time_scale', 1)}, "
            f"median of {result.get('repeats', '?')}; {result.get('kanseg_kernels', '')}")
    return head + "\n\n" + markdown_table(rows, [columns[k] for k in present], digits=1)


def predict_memory_markdown(result: dict[str, Any]) -> str:
    rows = [{"volume": "×".join(map(str, r["shape"])), "roi": r["roi"], "model": r["model"],
             "volume MiB (fp32)": r["volume_float32_MiB"], "peak − baseline MiB": r["peak_minus_baseline_MiB"],
             "seconds": r["seconds"]} for r in result["results"]]
    tail = ""
    if "marginal_copies_of_volume" in result:
        tail = (f"\n\nMarginal cost: {result['marginal_copies_of_volume']:.2f} volume copies + "
                f"{result.get('window_constant_MiB', float('nan')):.0f} MiB constant.")
    return markdown_table(rows, digits=1) + tail


def training_markdown(result: dict[str, Any]) -> str:
    """Per model: size, speed, what training cost (where recorded) and the scores; then per-class rows."""
    rows = []
    costs = any(r.get("train_time_s") for r in result["rows"])
    for r in result["rows"]:
        row = {"model": r["model"], "params (M)": f"{r['params'] / 1e6:.3f}",
               "GFLOPs": f"{r['flops'] / 1e9:.3f}", "images/s": f"{r['images_per_s']:.1f}"}
        if "time_vs_reference" in r:  # a study with a reference arm (benchmarks/kan_study.py)
            row["time × ref"] = f"{r['time_vs_reference']:.2f}"
        if costs:
            row.update({"train time (min)": _ms(r.get("train_time_s"), 1, 1 / 60),
                        "s/epoch": _ms(r.get("s_per_epoch"), 1), "peak RSS (GB)": _ms(r.get("peak_rss_mb"), 2, 1 / 1024)})
        row.update({"Dice": _ms(r["dice"], 4), "IoU": _ms(r["iou"], 4),
                    "HD95": _ms(r["hd95"], 2 if costs else 1),
                    "global IoU": _ms(r["global_iou"], 4)})
        rows.append(row)
    shape = "×".join(str(s) for s in result["rows"][0]["input_shape"]) if result["rows"] else "?"
    head = (f"{result['dataset']}, split {result.get('split') or 'default'} / {result['subset']}, "
            f"{len(result['rows'][0]['seeds']) if result['rows'] else 0} seeds, {result['epochs']} epochs, "
            f"input {shape}; mean ± std over seeds of per-image scores at native resolution (HD95 in pixels, "
            "mm for data with a spacing)")
    text = head + "\n\n" + markdown_table(rows)
    per_class = [{"model": r["model"], "class": cls, "Dice": _ms(s["dice"], 4), "IoU": _ms(s["iou"], 4),
                  "HD95": _ms(s["hd95"], 2)} for r in result["rows"] for cls, s in r.get("per_class", {}).items()]
    if per_class:
        text += "\n\nPer foreground class (mean ± std over seeds):\n\n" + markdown_table(per_class)
    return text


def transfer_markdown(result: dict[str, Any]) -> str:
    """``benchmarks/transfer_peft.py``: per number of labelled frames and arm, trainable parameters, test scores and
    adaptation time (mean ± std over seeds)."""
    rows = []
    for shots, block in result["shots"].items():
        pre = block["pretrained"]
        rows.append({"frames": shots, "arm": "pretrained, not adapted", "trainable params": "0",
                     "test Dice": f"{pre['dice']:.3f}", "test IoU": f"{pre['iou']:.3f}", "adaptation time (s)": "0"})
        for arm, r in block["arms"].items():
            rows.append({"frames": shots, "arm": arm, "trainable params": f"{int(r['trainable_params']['mean']):,}",
                         "test Dice": _ms(r["dice"], 3), "test IoU": _ms(r["iou"], 3),
                         "adaptation time (s)": _ms(r["train_time_s"], 0)})
    head = (f"{result['seeds']} seeds; {result['model']['name']} {result['model']['kwargs']}, "
            f"images {'×'.join(map(str, result['image_size']))}, Adam lr {result['lr']}, epochs per frame count "
            f"{result['epochs_per_shots']}; pretrained model's val Dice {result['pretrained_val_dice']:.3f}")
    return head + "\n\n" + markdown_table(rows)


def model_memory_markdown(result: dict[str, Any]) -> str:
    rows = [{"model": r["model"], "params": r["params"], "eager saved MiB": r["eager_saved_MiB"],
             "fused saved MiB": r["fused_saved_MiB"], "eager / fused": r["saved_ratio"], "eager ms": r["eager_ms"],
             "fused ms": r["fused_ms"]} for r in result["rows"]]
    if any("compile_ms" in r for r in result["rows"]):
        for row, r in zip(rows, result["rows"]):
            row.update({"compile saved MiB": r.get("compile_saved_MiB", ""), "compile ms": r.get("compile_ms", ""),
                        "compile s (once)": r.get("compile_s", "")})
    head = f"one training step, batch {result['batch']}, input {'×'.join(map(str, result['input']))}"
    return head + "\n\n" + markdown_table(rows, digits=1)


def conv_backward_markdown(result: dict[str, Any]) -> str:
    rows = [{"dims": r["spatial_dims"], "c_in → c_out": f"{r['in_channels']} → {r['out_channels']}",
             "stride": r["stride"][0], "input": f"{r.get('batch', '')}×" + "×".join(map(str, r["size"])),
             "torch backward ms": r["torch_ms"], "forward-kernel ms": r["forward_ms"], "speedup": r["speedup"]}
            for r in result["entries"]]
    return f"median of {result['repeats']} interleaved repeats\n\n" + markdown_table(rows, digits=2)


def step3d_markdown(result: dict[str, Any]) -> str:
    routes = result["routes"]
    rows = [{"model": f"{r['model']} (width {r['base_width']}, depth {r['depth']})", "params (M)": r["params"] / 1e6,
             **{f"{route} s/step": r[f"{route}_s"] for route in routes}, f"{routes[0]} / {routes[-1]}": r["speedup"]}
            for r in result["rows"]]
    head = (f"one training step (forward, cross-entropy, backward, Adam), batch {result['batch']}, input "
            f"{'×'.join(map(str, result['input']))}, {result['out_channels']} classes; median of {result['repeats']}")
    return head + "\n\n" + markdown_table(rows, digits=3)


MARKDOWN: dict[str, Callable[[dict[str, Any]], str]] = {
    "layers": layers_markdown, "kernels": kernels_markdown, "predict-memory": predict_memory_markdown,
    "model-memory": model_memory_markdown, "training": training_markdown, "conv-backward": conv_backward_markdown,
    "step3d": step3d_markdown, "transfer": transfer_markdown,
}


def results_markdown(result: dict[str, Any]) -> str:
    """The Markdown table(s) of one result of any kind."""
    return MARKDOWN[result_kind(result)](result)


# --- plots ------------------------------------------------------------------------------------------------------
def _bars(ax, labels: list[str], series: dict[str, list[float]], ylabel: str, log: bool = False) -> None:
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(labels))
    for k, (name, values) in enumerate(series.items()):
        ax.bar(positions + (k - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7)


def plot_layers(result: dict[str, Any]):
    """Per case (2D/3D): time and saved-for-backward memory of each KAN layer relative to a plain conv."""
    fig = new_figure(10, 3.2 * len(result["cases"]))
    axes = np.asarray(fig.subplots(len(result["cases"]), 2, squeeze=False))
    for (name, case), (ax_time, ax_mem) in zip(result["cases"].items(), axes):
        labels = [r["layer"] for r in case["rows"]]
        modes = result.get("modes") or [result.get("kernels", "fwd+bwd")]
        time_ratio = {modes[0]: [r["time_vs_conv"] for r in case["rows"]]}
        saved_ratio = {modes[0]: [r["saved_vs_conv"] for r in case["rows"]]}
        for m in modes[1:]:
            time_ratio[m] = [r.get(f"{m}_time_vs_conv", np.nan) for r in case["rows"]]
            saved_ratio[m] = [r.get(f"{m}_saved_vs_conv", np.nan) for r in case["rows"]]
        _bars(ax_time, labels, time_ratio, "× plain conv time (log)", log=True)
        _bars(ax_mem, labels, saved_ratio, "× plain conv saved memory (log)", log=True)
        ax_time.set_title(f"{name}: time ({result['device']})", fontsize=9)
        ax_mem.set_title(f"{name}: saved for backward", fontsize=9)
    return fig


def plot_kernels(result: dict[str, Any]):
    """Per shape: saved-for-backward MiB (plain / eager / fused) and fwd+bwd ms (eager / compile / fused)."""
    shapes = list(dict.fromkeys(r["shape"] for r in result["rows"]))
    fig = new_figure(10, 3.2 * len(shapes))
    axes = np.asarray(fig.subplots(len(shapes), 2, squeeze=False))
    for shape, (ax_mem, ax_time) in zip(shapes, axes):
        rows = [r for r in result["rows"] if r["shape"] == shape]
        labels = [r["family"] for r in rows]
        memory = {k.split("_")[0]: [r.get(k, np.nan) for r in rows]
                  for k in ("plain_saved_mib", "eager_saved_mib", "fused_saved_mib") if any(k in r for r in rows)}
        times = {k.split("_")[0]: [r.get(k, np.nan) for r in rows]
                 for k in ("eager_ms", "compile_ms", "fused_ms") if any(k in r for r in rows)}
        _bars(ax_mem, labels, memory, "saved MiB", log=True)
        ax_mem.set_title(f"{shape}: saved for backward ({result['device']})", fontsize=9)
        if times:
            _bars(ax_time, labels, times, "fwd+bwd ms", log=True)
            ax_time.set_title(f"{shape}: time (inputs × {result.get('time_scale', 1)})", fontsize=9)
        else:
            ax_time.set_axis_off()
    return fig


def plot_training(result: dict[str, Any]):
    """Test Dice / IoU (mean ± std over seeds) and inference images/s of each model of a training benchmark."""
    rows = result["rows"]
    labels = [r["model"] for r in rows]
    fig = new_figure(9, 3.2)
    ax_score, ax_speed = fig.subplots(1, 2)
    positions = np.arange(len(rows))
    for k, metric in enumerate(("dice", "iou")):
        ax_score.bar(positions + (k - 0.5) * 0.38, [r[metric]["mean"] for r in rows], 0.38,
                     yerr=[r[metric]["std"] for r in rows], capsize=3, label=metric)
    ax_score.set_xticks(positions, labels, rotation=20, ha="right", fontsize=8)
    ax_score.set_ylabel(f"{result['subset']} score (mean ± std, {len(rows[0]['seeds'])} seeds)", fontsize=8)
    ax_score.legend(fontsize=7)
    ax_speed.bar(positions, [r["images_per_s"] for r in rows])
    ax_speed.set_xticks(positions, labels, rotation=20, ha="right", fontsize=8)
    ax_speed.set_ylabel(f"images/s ({rows[0]['device']})", fontsize=8)
    for ax in (ax_score, ax_speed):
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{result['dataset']} / {result.get('split')}: {result['epochs']} epochs", fontsize=9)
    return fig


def plot_model_memory(result: dict[str, Any]):
    """Saved-for-backward MiB of one training step per model, eager vs fused."""
    fig = new_figure(6, 3.2)
    ax = fig.subplots()
    rows = result["rows"]
    _bars(ax, [r["model"] for r in rows], {mode: [r[f"{mode}_saved_MiB"] for r in rows]
                                           for mode in ("eager", "fused")}, "saved MiB")
    ax.set_title(f"whole model, one training step ({result['device']})", fontsize=9)
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: ``(cost, score)`` pairs, lower cost and higher score better;
    returned by increasing cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(results: dict[str, dict[str, Any]] | dict[str, Any], *, score: str = "dice"):
    """Test ``score`` against training time (minutes per run), mean ± std over seeds for both, one marker per model
    of every training result given (``{name: result}`` or one result), and the Pareto front over all of them."""
    if "rows" in results:
        results = {results.get("dataset", "benchmark"): results}
    fig = new_figure(6.5, 4.2)
    ax = fig.subplots()
    points, labels = [], []
    for name, result in results.items():
        rows = [r for r in result["rows"] if r.get("train_time_s") and np.isfinite(r["train_time_s"]["mean"])]
        if not rows:
            continue
        x = [r["train_time_s"]["mean"] / 60 for r in rows]
        ax.errorbar(x, [r[score]["mean"] for r in rows], yerr=[r[score]["std"] for r in rows],
                    xerr=[r["train_time_s"]["std"] / 60 for r in rows], fmt="o", capsize=3,
                    label=name if len(results) > 1 else None)
        for r, xi in zip(rows, x):
            ax.annotate(r["model"], (xi, r[score]["mean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
            points.append((xi, r[score]["mean"]))
            labels.append(r["model"])
    if not points:
        raise KansegError("no training result records training time (train_time_s); rerun kanseg benchmark")
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("training time per run (min)", fontsize=8)
    ax.set_ylabel(f"test {score} (mean ± std over seeds)", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


PLOTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "layers": plot_layers, "kernels": plot_kernels, "model-memory": plot_model_memory, "training": plot_training,
}
