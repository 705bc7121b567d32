#!/usr/bin/env python
"""Transfer study (issue 17): adapt a KAN U-Net trained on some CVC-ClinicDB video sequences to held-out sequences
with a few labelled frames: PEFT against full fine-tuning, a frozen encoder and training from scratch.

Protocol (all on the real CVC-ClinicDB release, CPU):

1. Pretrain ``unet-gram`` (base width 8, depth 4, degree 3, 96×128 images) on split ``clean`` (train frames
   1-428, best epoch on val 429-503); frames 504-612 are never trained on. ``--pretrained`` reuses a run.
2. Adapt on split ``transfer-<n>shot`` (n = 10 and 30 frames spread over held-out sequences 504-546) with each arm,
   the same epochs, optimiser and augmentation; the last epoch is kept (the few labelled frames are all there is,
   so there is no separate model selection); test on the other held-out sequences (547-612, 66 frames).

Arms: ``scratch`` (random init), ``full`` (every weight), ``frozen-encoder`` (decoder and head only), ``peft-E1``
(one extra degree), ``peft-T3`` (delta on the top degree D = 3), ``peft-E1-T3`` (both); PEFT arms train only the
new coefficients (:mod:`kanseg.kan.peft`). Also reported: the pretrained model itself on the same test frames.

    python benchmarks/transfer_peft.py                          # ../shared/data/CVC-ClinicDB, 3 seeds
    python benchmarks/transfer_peft.py --pretrained runs/transfer/pretrain-gram --seeds 3

Writes ``benchmarks/results/transfer-peft-cpu.json`` and prints a markdown table. Runs live under ``--out``;
finished ones are reused (``kanseg.engine.benchmark.ensure_run``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from common import device_name, write_json  # noqa: E402

from kanseg.checkpoint import build_model, load_checkpoint  # noqa: E402
from kanseg.config import load_config  # noqa: E402
from kanseg.engine import setup  # noqa: E402
from kanseg.engine.benchmark import ensure_run  # noqa: E402
from kanseg.engine.distributed import init_distributed  # noqa: E402
from kanseg.engine.evaluate import evaluate_dataset  # noqa: E402
from kanseg.engine.runlog import RunLog, read_json  # noqa: E402
from kanseg.engine.runlog import write_json as write_json_file  # noqa: E402
from kanseg.viz.benchmarks import results_markdown  # noqa: E402

MODEL = {"name": "unet-gram", "kwargs": {"base_width": 8, "depth": 4}}
IMAGE_SIZE = [96, 128]  # CVC frames are 288×384: a third, aspect kept
ARMS = {  # arm -> config overrides on top of the adaptation config
    "scratch": {},
    "full": {"init_from": True},
    "frozen-encoder": {"init_from": True, "freeze": ["encoder"]},
    "peft-E1": {"init_from": True, "peft.extra_degrees": 1},
    "peft-T3": {"init_from": True, "peft.trainable_degrees": [3]},
    "peft-E1-T3": {"init_from": True, "peft.extra_degrees": 1, "peft.trainable_degrees": [3]},
}
SHOTS = {10: 30, 30: 12}  # labelled frames -> adaptation epochs (about 300-360 training samples each)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(REPO / ".." / "shared" / "data" / "CVC-ClinicDB"))
    parser.add_argument("--pretrained", default=None, help="a finished pretraining run (default: train one)")
    parser.add_argument("--pretrain-epochs", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--shots", default=",".join(map(str, SHOTS)))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default=str(REPO / "runs" / "transfer"))
    parser.add_argument("--result", default="transfer-peft-cpu.json")
    return parser.parse_args(argv)


def base_config(args: argparse.Namespace, **overrides):
    return load_config(None, {"data.dataset": "cvc", "data.data_root": str(Path(args.data_root).resolve()),
                              "data.image_size": IMAGE_SIZE, "model.name": MODEL["name"],
                              "model.kwargs": MODEL["kwargs"], "batch_size": 8, "optim.lr": args.lr,
                              "device": "cpu", "monitor": "dice", **overrides})


def pretrain(args: argparse.Namespace, log: RunLog) -> Path:
    run = Path(args.pretrained or Path(args.out) / "pretrain-gram")
    if args.pretrained is None or not (run / "summary.json").is_file():
        cfg = base_config(args, **{"data.split": "clean", "epochs": args.pretrain_epochs, "out": str(run)})
        ensure_run(cfg, "val", log)
    summary = read_json(run / "summary.json")
    for shots in _shots(args):  # the pretrained model on each transfer split's test frames
        key = f"transfer-{shots}shot"
        if key not in summary:
            cfg = base_config(args, **{"data.split": key})
            dataset = setup.build_datasets(cfg, ("test",))["test"]
            model = build_model(load_checkpoint(run / "best.pt"))
            _, report = evaluate_dataset(model, dataset, init_distributed("cpu"), with_hd95=False, log=log,
                                         **setup.eval_options(cfg, dataset))
            summary[key] = {"checkpoint": "best.pt", "subset": "test", "report": report}
            write_json_file(run / "summary.json", summary)
    return run


def _shots(args: argparse.Namespace) -> list[int]:
    return [int(s) for s in args.shots.split(",") if s.strip()]


def adapt(args: argparse.Namespace, pretrained: Path, arm: str, shots: int, seed: int, log: RunLog) -> dict:
    overrides = {k: v for k, v in ARMS[arm].items() if k != "init_from"}
    if ARMS[arm].get("init_from"):
        overrides["init_from"] = str(pretrained / "best.pt")
    epochs = SHOTS.get(shots, 12)
    cfg = base_config(args, **{"data.split": f"transfer-{shots}shot", "epochs": epochs, "val_every": epochs,
                               "seed": seed, "out": str(Path(args.out) / f"{shots}shot" / arm / f"seed{seed}"),
                               **overrides})
    summary = ensure_run(cfg, "test", log)
    run = summary["run"]
    return {"dice": summary["test"]["report"]["per_image"]["dice"]["mean"],
            "iou": summary["test"]["report"]["per_image"]["iou"]["mean"],
            "trainable_params": run.get("trainable_params"), "params": run["params"],
            "train_time_s": run.get("train_time_s")}


def _stats(values: list[float]) -> dict:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "values": values} if arr.size else {}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    log = RunLog(None)
    started = time.perf_counter()
    pretrained = pretrain(args, log)
    pre_summary = read_json(pretrained / "summary.json")
    result = {"protocol": __doc__.split("\n\n")[1], "model": MODEL, "image_size": IMAGE_SIZE, "lr": args.lr,
              "epochs_per_shots": SHOTS, "pretrained_run": str(pretrained),
              "pretrained_val_dice": pre_summary["val"]["report"]["per_image"]["dice"]["mean"], "shots": {}}
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    for shots in _shots(args):
        report = pre_summary[f"transfer-{shots}shot"]["report"]["per_image"]
        block = {"pretrained": {"dice": report["dice"]["mean"], "iou": report["iou"]["mean"]}, "arms": {}}
        for arm in arms:
            runs = [adapt(args, pretrained, arm, shots, seed, log) for seed in range(args.seeds)]
            block["arms"][arm] = {k: _stats([r[k] for r in runs]) for k in runs[0]}
        result["shots"][str(shots)] = block
    result.update(machine=device_name(torch.device("cpu")), torch_threads=torch.get_num_threads(),
                  torch=torch.__version__, python=platform.python_version(), seeds=args.seeds,
                  wall_s=round(time.perf_counter() - started, 1),
                  command="python benchmarks/transfer_peft.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    result["table"] = results_markdown(result)  # the same table benchmarks/README.md shows
    print(result["table"])
    print(f"wrote {write_json(args.result, result)}")
    return result


if __name__ == "__main__":
    main()
