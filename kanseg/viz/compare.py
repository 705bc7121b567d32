"""Train (or reuse) several models on one dataset and gather what a side-by-side comparison shows.

    >>> base = load_config("configs/cpu-quick.yaml", {"data.dataset": "demo", "epochs": 3})
    >>> runs = train_or_load(base, ["unet-conv", "unet-gram"], "runs/compare")
    >>> rows = case_table({name: run.evaluation for name, run in runs.items()})
    >>> views = case_views(runs, [rows[0]["id"]])

Each model's run lives in ``RUNS_ROOT/<model>-<config digest>/seed<k>``: a run with the same settings is reused
(resumed if it was stopped), changed settings get a new folder, nothing is overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanseg.config import TrainConfig, load_config
from kanseg.engine import setup
from kanseg.engine.benchmark import ensure_run
from kanseg.engine.evaluate import evaluate_run
from kanseg.engine.runlog import RunLog, read_json
from kanseg.errors import KansegError
from kanseg.inference import Predictor
from kanseg.viz.figures import CaseView


@dataclass
class ModelRun:
    """A trained model's run directory and its evaluation entry on one subset (``{"report", "cases"}``)."""

    name: str
    run_dir: Path
    subset: str
    evaluation: dict[str, Any]

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "best.pt"


def config_digest(cfg: TrainConfig) -> str:
    """8 hex digits identifying what a run computes (:func:`kanseg.engine.setup.run_digest`)."""
    return setup.run_digest(cfg)


def train_or_load(base: TrainConfig, models: Sequence[str], runs_root: str | Path, *, seed: int = 0,
                  subset: str = "test", log: RunLog | None = None) -> dict[str, ModelRun]:
    """Train each of ``models`` with ``base``'s settings (or reuse a finished identical run) and evaluate the
    best checkpoint on ``subset``. Returns ``{model: ModelRun}`` in the order given."""
    if not models:
        raise KansegError("no models to compare")
    log = log or RunLog(None)
    runs = {}
    for name in models:
        cfg = base.model_copy(deep=True)
        cfg.model.name, cfg.seed = name, seed
        cfg.out = str(Path(runs_root) / f"{name}-{config_digest(cfg)}" / f"seed{seed}")
        summary = ensure_run(cfg, subset, log)
        runs[name] = ModelRun(name, Path(cfg.out), subset, summary[subset])
    return runs


def load_runs(run_dirs: Mapping[str, str | Path], *, subset: str = "test", data_root: str | None = None,
              log: RunLog | None = None) -> dict[str, ModelRun]:
    """Existing run directories (``{label: RUN_DIR}``, e.g. from ``kanseg train`` or ``kanseg benchmark``) with
    their evaluation on ``subset``: read from ``summary.json``, or computed (and recorded) when missing."""
    if not run_dirs:
        raise KansegError("no run directories given")
    runs = {}
    for label, run_dir in run_dirs.items():
        run_dir = Path(run_dir)
        if not (run_dir / "best.pt").is_file():
            raise KansegError(f"{run_dir} is not a finished kanseg run (no best.pt)")
        summary_path = run_dir / "summary.json"
        summary = read_json(summary_path) if summary_path.is_file() else {}
        entry = summary.get(subset) or evaluate_run(run_dir, subset=subset, data_root=data_root, log=log)
        runs[label] = ModelRun(label, run_dir, subset, entry)
    return runs


def case_views(runs: dict[str, ModelRun], ids: Sequence[str], *, data_root: str | None = None,
               metric: str = "dice", device: str = "cpu") -> list[CaseView]:
    """Native image, ground truth and every model's predicted mask (``kanseg.inference.Predictor`` on the best
    checkpoint) for the case ``ids`` of the runs' evaluation subset, with each model's ``metric`` for the case."""
    if not runs:
        raise KansegError("no runs to draw")
    first = next(iter(runs.values()))
    cfg = load_config(first.run_dir / "config.yaml", {"data.data_root": data_root})
    dataset = setup.build_datasets(cfg, (first.subset,))[first.subset]
    index_of = {str(case_id): k for k, case_id in enumerate(dataset.ids)}
    unknown = [i for i in ids if str(i) not in index_of]
    if unknown:
        raise KansegError(f"case id(s) {unknown} are not in the {first.subset} subset")
    predictors = {name: Predictor.from_checkpoint(run.checkpoint, device=device) for name, run in runs.items()}
    scores = {name: {str(r["id"]): float(r[metric]) for r in run.evaluation["cases"]} for name, run in runs.items()}
    views = []
    for case_id in map(str, ids):
        image = dataset.native_image(index_of[case_id])
        view = CaseView(case_id, image, dataset.native_label(index_of[case_id]))
        for name, predictor in predictors.items():
            view.predictions[name] = predictor.predict_mask(image)
            view.scores[name] = scores[name].get(case_id, float("nan"))
        views.append(view)
    return views
