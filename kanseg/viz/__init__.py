"""Pictures and tables for notebooks and reports: prediction overlays, per-case score tables, learned KAN
functions, benchmark plots. Heavy lifting stays here so the notebooks only call it.

    >>> from kanseg.viz import learned_functions, plot_learned_functions, find_kan_layers
    >>> name, layer = find_kan_layers(model)[0]
    >>> fig = plot_learned_functions(learned_functions(layer), outputs=(0, 1))
    >>> fig.savefig("functions.png")

Modules: ``basis`` (edge functions φ_oi of a KANConv), ``scores`` (case tables, best/worst, Markdown),
``figures`` (overlays and matplotlib figures, pyplot-free), ``compare`` (train or reuse runs, case views),
``benchmarks`` (tables and plots of ``benchmarks/results/*.json``). matplotlib is only needed for figures.
"""

from kanseg.viz.basis import (
    LearnedFunctions, basis_channel_owner, basis_curves, find_kan_layers, learned_functions,
)
from kanseg.viz.benchmarks import (
    load_results, plot_kernels, plot_layers, plot_training, result_kind, results_markdown,
)
from kanseg.viz.compare import ModelRun, case_views, config_digest, load_runs, train_or_load
from kanseg.viz.figures import (
    CaseView, error_overlay, figure_png, new_figure, plot_basis_curves, plot_cases, plot_learned_functions,
    plot_score_distribution,
)
from kanseg.viz.scores import best_and_worst, case_table, markdown_table, metrics_rows

__all__ = [
    "CaseView",
    "LearnedFunctions",
    "ModelRun",
    "basis_channel_owner",
    "basis_curves",
    "best_and_worst",
    "case_table",
    "case_views",
    "config_digest",
    "error_overlay",
    "figure_png",
    "find_kan_layers",
    "learned_functions",
    "load_results",
    "load_runs",
    "markdown_table",
    "metrics_rows",
    "new_figure",
    "plot_basis_curves",
    "plot_cases",
    "plot_kernels",
    "plot_layers",
    "plot_learned_functions",
    "plot_score_distribution",
    "plot_training",
    "result_kind",
    "results_markdown",
    "train_or_load",
]
