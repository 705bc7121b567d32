"""``kanseg train | evaluate | benchmark | demo``.

Flags override the ``--config`` YAML, which overrides the defaults (:mod:`kanseg.config`);
``--set KEY=VALUE`` reaches any other config key. ``torchrun --nproc-per-node N -m kanseg train ...``
trains with DDP, nothing else changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from kanseg.cli import app
from kanseg.errors import KansegError

DATASET_HELP = "busi, glas, cvc, demo, or a path to a Decathlon / nnU-Net style dataset.json."


def _overrides(
    dataset=None, model=None, data_root=None, split=None, epochs=None, batch_size=None, image_size=None,
    seed=None, device=None, amp=None, out=None, settings: list[str] | None = None,
) -> dict[str, Any]:
    """``--set`` assignments, then the flags given (a flag beats a ``--set`` of the same key) as dotted config keys."""
    from kanseg.config import parse_assignment

    flags = {"data.dataset": dataset, "model.name": model, "data.data_root": data_root, "data.split": split,
             "epochs": epochs, "batch_size": batch_size, "data.image_size": image_size, "seed": seed,
             "device": device, "amp": amp, "out": str(out) if out is not None else None}
    return {**dict(parse_assignment(s) for s in settings or []), **{k: v for k, v in flags.items() if v is not None}}


@app.command("train")
def train_cmd(
    dataset: Optional[str] = typer.Option(None, "--dataset", help=DATASET_HELP),
    model: Optional[str] = typer.Option(None, "--model", help="Model preset (see `kanseg models`)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config (e.g. configs/busi.yaml)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the dataset."),
    split: Optional[str] = typer.Option(None, "--split", help="Named split: legacy-2981, clean, ..."),
    fold: Optional[int] = typer.Option(None, "--fold", help="Cross-validation fold 0..4 of the default split "
                                       "(busi/glas/cvc: clean-fold<k>; dataset.json: fold<k>)."),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Resize 2D images to N x N."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
    amp: Optional[str] = typer.Option(None, "--amp", help="off | fp16 | bf16"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<dataset>-<model>-...)."),
    settings: Optional[list[str]] = typer.Option(None, "--set", help="KEY=VALUE config override, repeatable."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from this checkpoint's weights "
                                             "(fine-tuning; add --set peft.extra_degrees=1 for PEFT)."),
) -> None:
    """Train a model; writes config.yaml, best.pt, last.pt, metrics.jsonl, log.txt, summary.json."""
    from kanseg.cli.checks import check_training
    from kanseg.config import load_config

    if resume is not None:
        given = {"--dataset": dataset, "--model": model, "--config": config, "--split": split, "--fold": fold,
                 "--batch-size": batch_size, "--image-size": image_size, "--seed": seed, "--amp": amp,
                 "--out": out, "--set": settings, "--init-from": init_from}
        extra = [flag for flag, value in given.items() if value not in (None, [])]
        if extra:
            raise KansegError(f"--resume continues the run's saved config; {', '.join(extra)} cannot change it "
                              "(only --epochs, --device and --data-root may be given)")
        if not (resume / "config.yaml").is_file():
            raise KansegError(f"cannot resume: {resume} is not a kanseg run directory (no config.yaml)")
        cfg = load_config(resume / "config.yaml", _overrides(epochs=epochs, device=device, data_root=data_root))
    else:
        if fold is not None and split is not None:
            raise KansegError(f"--fold {fold} and --split {split} both choose the split; give one of them")
        cfg = load_config(config, {**_overrides(dataset, model, data_root, split, epochs, batch_size, image_size,
                                                seed, device, amp, out, settings),
                                   "init_from": str(init_from) if init_from is not None else None})
        if fold is not None:
            from kanseg.data.names import fold_split

            cfg.data.split = fold_split(cfg.data.dataset, fold)
    check_training(cfg)  # names and folders, before torch and MONAI are imported
    from kanseg.engine import train

    train(cfg, resume=resume)


@app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Option(..., "--run", help="A run directory."),
    subset: str = typer.Option("test", "--split", "--subset", help="Subset to score: train | val | test."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Where the data is now, if it moved."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Per-image Dice / IoU / HD95 at native resolution, global and ukan-compat scores -> summary.json."""
    from kanseg.cli.checks import check_run_dir

    check_run_dir(run)
    from kanseg.config import load_config
    from kanseg.engine import evaluate_run
    from kanseg.engine.runlog import RunLog
    from kanseg.engine.setup import protocol_note
    from kanseg.metrics import format_report

    entry = evaluate_run(run, subset=subset, data_root=data_root, checkpoint=checkpoint, device=device,
                         log=RunLog(None))
    typer.echo(format_report(entry["report"], f"{run / entry['checkpoint']} (epoch {entry['epoch']}) on {subset}:"))
    note = protocol_note(load_config(run / "config.yaml"))
    if note:
        typer.echo(f"note: {note}")
    typer.echo(f"per-case rows and aggregates: {run / 'summary.json'} [{subset!r}]")


@app.command("benchmark")
def benchmark_cmd(
    dataset: str = typer.Option(..., "--dataset", help=DATASET_HELP),
    models: str = typer.Option("unet-conv,unet-gram", "--models",
                               help="Comma-separated model presets, each optionally with model.kwargs overrides: "
                                    "unet-gram@base_width=4@depth=3."),
    seeds: int = typer.Option(3, "--seeds", help="Number of seeds (0..N-1)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config shared by all runs."),
    data_root: Optional[str] = typer.Option(None, "--data-root"),
    split: Optional[str] = typer.Option(None, "--split"),
    subset: str = typer.Option("test", "--subset", help="Subset the table reports."),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    image_size: Optional[int] = typer.Option(None, "--image-size"),
    device: Optional[str] = typer.Option(None, "--device"),
    amp: Optional[str] = typer.Option(None, "--amp"),
    out: Optional[Path] = typer.Option(None, "--out", help="Runs and table go here (default runs/benchmark-<dataset>)."),
    settings: Optional[list[str]] = typer.Option(None, "--set", help="KEY=VALUE config override, repeatable."),
    match_params: bool = typer.Option(False, "--match-params",
                                      help="Give every model without its own base_width the width whose parameter "
                                           "count is closest to the first model's."),
    match_time: bool = typer.Option(False, "--match-time",
                                    help="Give every model without its own epochs setting the number of epochs "
                                         "whose training time equals the first model's (steps timed here)."),
) -> None:
    """Train (or reuse) every model x seed, print and save a mean ± std table with params, FLOPs, images/s,
    training time, seconds per epoch and peak memory."""
    from kanseg.cli.checks import check_dataset, check_models
    from kanseg.config import load_config, parse_model_spec

    specs = [parse_model_spec(m) for m in models.split(",") if m.strip()]
    names = [spec.name for spec in specs]
    if seeds < 1:
        raise KansegError(f"--seeds must be at least 1, got {seeds}")
    base = load_config(config, _overrides(dataset, None, data_root, split, epochs, batch_size, image_size,
                                          None, device, amp, None, settings))
    check_dataset(base.data.dataset, base.data.data_root)
    check_models(names)  # unknown names fail before any training (and before torch is imported)
    from kanseg.engine import run_benchmark

    root = out or Path("runs") / f"benchmark-{Path(dataset).stem if dataset.endswith('.json') else dataset}"
    for spec in specs:
        spec.apply(base)  # a bad per-model config key or value fails before any training
    run_benchmark(base, specs, list(range(seeds)), root, subset=subset, match_params=match_params,
                  match_time=match_time)
    typer.echo(f"table: {root / 'benchmark.md'}  data: {root / 'benchmark.json'}")


# --- demo ------------------------------------------------------------------------------------------------------
DEMO_SETTINGS = {  # a small KAN U-Net on the generated 64x64 demo images: a few CPU minutes at most
    "data.dataset": "demo", "data.image_size": 64, "model.name": "unet-gram",
    "model.kwargs": {"base_width": 8, "depth": 3}, "batch_size": 8, "optim.lr": 3e-3, "optim.min_lr": 1e-4,
    "optim.grad_clip": 5.0, "monitor": "dice",
}


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("kanseg-demo"), "--out", help="Where the data and the runs go."),
    epochs: int = typer.Option(8, "--epochs"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Out of the box: generate data, train a small KAN U-Net, evaluate it, show its median test case."""
    import time

    from kanseg.config import load_config
    from kanseg.engine import evaluate_run, train
    from kanseg.engine.runlog import RunLog
    from kanseg.engine.setup import default_run_dir
    from kanseg.metrics import format_report

    started = time.perf_counter()
    data_root = out / "data"
    cfg = load_config(None, {**DEMO_SETTINGS, "data.data_root": str(data_root), "epochs": epochs, "device": device})
    cfg.out = str(default_run_dir(cfg, root=out / "runs"))
    typer.echo(f"kanseg demo: generated data in {data_root}, training {cfg.model.name} for {epochs} epochs")
    result = train(cfg)
    test = evaluate_run(result.run_dir, subset="test", device=device, log=RunLog(None))
    typer.echo(format_report(test["report"], "test set:"))
    predictions = _show_median_case(result.run_dir, cfg, test["cases"], result.run_dir / "predictions")
    typer.echo(f"\ndone in {time.perf_counter() - started:.0f} s. Where everything is:")
    for what, path in [("data", data_root), ("run directory", result.run_dir),
                       ("best checkpoint", result.run_dir / "best.pt"), ("epoch metrics", result.run_dir / "metrics.jsonl"),
                       ("evaluation (val + test)", result.run_dir / "summary.json"), *predictions]:
        typer.echo(f"  {what:<24} {path}")
    typer.echo(f"next: kanseg predict --checkpoint {result.run_dir / 'best.pt'} YOUR_IMAGES --out predictions/")


def _show_median_case(run_dir: Path, cfg, rows: list[dict], out_dir: Path) -> list[tuple[str, Path]]:
    """Predict the test case of median Dice (a representative one, not the best or the worst) with
    kanseg.inference, write ground truth | prediction enlarged to >= 256 px, print its Dice; the paths."""
    import math

    import cv2

    from kanseg.engine.setup import build_datasets
    from kanseg.inference import overlays, predict, read_image, write_png

    scored = sorted((r for r in rows if not math.isnan(r["dice"])), key=lambda r: r["dice"])
    if not scored:
        raise KansegError("demo: no test case has a Dice score")
    row = scored[len(scored) // 2]
    dataset = build_datasets(cfg, ("test",))["test"]
    image = dataset.cases[row["index"]].image[0]
    report = predict(run_dir / "best.pt", [image], out_dir, overlay=True, progress=False, device=cfg.device)
    if not report.ok:
        raise KansegError(f"demo prediction failed: {report.failures[0].error}")
    outputs = report.outcomes[0].outputs
    prediction = cv2.imread(str(outputs["mask"]), cv2.IMREAD_UNCHANGED) > 0
    picture = overlays.comparison(read_image(image), dataset.native_label(row["index"]), prediction,
                                  titles=("ground truth", f"prediction, Dice {row['dice']:.2f}"))
    shown = write_png(out_dir / f"{Path(outputs['mask']).name[:-len('_mask.png')]}_median_dice{row['dice']:.2f}.png",
                      picture)
    typer.echo(f"\nmedian test case {row['id']!r} (of {len(scored)}): Dice {row['dice']:.3f}, IoU {row['iou']:.3f}; "
               f"ground truth | prediction, {picture.shape[1]}x{picture.shape[0]} px: {shown}")
    return [("input image", Path(image)), *((f"predicted {kind}", Path(p)) for kind, p in outputs.items()),
            ("median case picture", shown)]
