"""Pictures: prediction overlays, case grids, per-case score distributions, learned KAN functions.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot on an Agg canvas, so they work
headless (CI, servers) and in notebooks (``display(fig)`` or leave it as a cell's last expression), and
``fig.savefig(path)`` writes them. matplotlib is an optional dependency (``pip install kanseg[notebooks]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kanseg.errors import KansegError
from kanseg.inference.overlays import to_display_uint8
from kanseg.viz.basis import LearnedFunctions

# RGB colours of agreement maps: true positive, false positive, false negative
TP_COLOUR, FP_COLOUR, FN_COLOUR = (0, 200, 0), (230, 40, 40), (40, 120, 255)
ALPHA = 0.45


def new_figure(width: float, height: float):
    """A pyplot-free ``Figure`` on an Agg canvas (no GUI, no global figure registry)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise KansegError("kanseg.viz needs matplotlib: pip install 'kanseg[notebooks]'") from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig, dpi: int = 90) -> bytes:
    """PNG bytes of a figure (for ``IPython.display.Image``, which needs no matplotlib backend set-up)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def error_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` agreement map of a prediction on ``image`` ``(H, W[, C])``.

    Masks are ``(H, W)``, non-zero = foreground. True positives green, false positives red, false negatives blue;
    without ``prediction`` the ground truth alone is drawn (green).
    """
    truth = np.asarray(truth) > 0
    prediction = truth if prediction is None else np.asarray(prediction) > 0
    if truth.shape != image.shape[:2] or prediction.shape != image.shape[:2]:
        raise KansegError(f"mask shapes {truth.shape} / {prediction.shape} do not match the image {image.shape[:2]}")
    picture = to_display_uint8(np.asarray(image)).astype(np.float32)
    for region, colour in ((truth & prediction, TP_COLOUR), (prediction & ~truth, FP_COLOUR),
                           (truth & ~prediction, FN_COLOUR)):
        picture[region] = (1 - ALPHA) * picture[region] + ALPHA * np.asarray(colour, dtype=np.float32)
    return picture.round().astype(np.uint8)


@dataclass
class CaseView:
    """One case to draw: native image ``(H, W[, C])``, ground truth ``(H, W)`` and each model's mask + scores."""

    id: str
    image: np.ndarray
    truth: np.ndarray
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def plot_cases(views: Sequence[CaseView], title: str = "", panel_size: float = 2.4):
    """Grid figure: one row per case, columns image | ground truth | one agreement map per model (Dice in titles)."""
    if not views:
        raise KansegError("no cases to plot")
    models = list(views[0].predictions)
    cols = 2 + len(models)
    fig = new_figure(panel_size * cols, panel_size * len(views) + (0.4 if title else 0))
    axes = np.asarray(fig.subplots(len(views), cols, squeeze=False))
    for row, view in zip(axes, views):
        panels = [(to_display_uint8(view.image), f"case {view.id}"),
                  (error_overlay(view.image, view.truth), "ground truth")]
        for name in models:
            score = view.scores.get(name)
            label = f"{name}\nDice {score:.3f}" if score is not None else name
            panels.append((error_overlay(view.image, view.truth, view.predictions[name]), label))
        for ax, (picture, label) in zip(row, panels):
            ax.imshow(picture)
            ax.set_title(label, fontsize=8)
            ax.set_axis_off()
    if title:
        fig.suptitle(f"{title}  (green: TP, red: FP, blue: FN)", fontsize=10)
    return fig


def plot_score_distribution(rows: Sequence[Mapping[str, Any]], models: Sequence[str], metric: str = "Dice"):
    """Per-case scores of each model (from :func:`kanseg.viz.case_table`): box plot plus the individual cases."""
    if not rows:
        raise KansegError("no case rows to plot")
    fig = new_figure(1.0 + 1.4 * len(models), 3.2)
    ax = fig.subplots()
    data = [[float(r[m]) for r in rows] for m in models]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(models) + 1), list(models))
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, size=len(rows))
    for k, values in enumerate(data, start=1):
        ax.scatter(k + jitter, values, s=9, alpha=0.6)
    ax.set_ylabel(f"{metric} per case")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_basis_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], panel_size: float = 2.6):
    """One panel per family: its P basis functions B_n(ν(x)) of one input channel (from
    :func:`kanseg.viz.basis_curves`: ``{family: (x (N,), curves (P, N))}``)."""
    if not curves:
        raise KansegError("no basis curves to plot")
    fig = new_figure(panel_size * len(curves), panel_size * 0.85)
    axes = np.atleast_1d(fig.subplots(1, len(curves)))
    for ax, (family, (x, values)) in zip(axes, curves.items()):
        for n, curve in enumerate(np.asarray(values)):
            ax.plot(np.asarray(x), curve, lw=1.1, label=f"n={n}")
        ax.set_title(f"{family}: B_n(ν(x)), P={len(values)}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlabel("x", fontsize=8)
    return fig


def plot_learned_functions(functions: Mapping[str, LearnedFunctions] | LearnedFunctions,
                           outputs: Sequence[int] = (0, 1, 2), max_inputs: int = 4, panel_size: float = 2.4,
                           reference: Mapping[str, LearnedFunctions] | None = None):
    """Rows = layers (e.g. one per family), columns = output channels o; one curve φ_oi per input channel i.

    Solid: φ_oi = basis term + base term; dotted (same colour): the basis term alone, when a base term exists.
    ``reference`` (same keys, e.g. the functions at initialisation): drawn dashed grey under each curve.
    """
    if isinstance(functions, LearnedFunctions):
        functions = {functions.family: functions}
    reference = reference or {}
    if not functions:
        raise KansegError("no learned functions to plot")
    outputs = list(outputs)
    fig = new_figure(panel_size * len(outputs) + 0.6, panel_size * 0.8 * len(functions))
    axes = np.asarray(fig.subplots(len(functions), len(outputs), squeeze=False))
    for row, (label, fn) in zip(axes, functions.items()):
        for ax, o in zip(row, outputs):
            if not 0 <= o < fn.basis.shape[0]:
                raise KansegError(f"output channel {o} out of range 0..{fn.basis.shape[0] - 1} for {label}")
            x = fn.x.cpu().numpy()
            for s, i in enumerate(fn.inputs[:max_inputs]):
                if label in reference:
                    ref = reference[label]
                    ax.plot(ref.x.cpu().numpy(), ref.total[o, s].cpu().numpy(), lw=0.8, ls="--", color="0.6")
                (line,) = ax.plot(x, fn.total[o, s].cpu().numpy(), lw=1.3, label=f"i={i}")
                if fn.base is not None:
                    ax.plot(x, fn.basis[o, s].cpu().numpy(), lw=0.8, ls=":", color=line.get_color())
            ax.set_title(f"output channel o={o}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        row[0].set_ylabel(f"{label}\nφ_oi(x)", fontsize=8)
        row[-1].legend(fontsize=6, loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("x", fontsize=8)
    return fig
