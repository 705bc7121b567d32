#!/usr/bin/env python
"""Where KAN convolutions pay (issue 13): KAN placement, degree, the bottleneck variant, the basis learning rate,
a KAN mixer and noise injection, each against the plain-conv U-Net at the same parameter count, several seeds,
on real data; one command regenerates every number.

Every arm is the ``unet-conv`` template (max-pool down-sampling, bilinear up-sampling, two 3×3 layers per level)
with some of its blocks swapped for Gram (KAGN) KAN convs, matched to the conv baseline's parameter count by
``kanseg benchmark --match-params`` (:func:`kanseg.engine.benchmark.match_base_width`). Budget and data:
``configs/kan-study-cvc.yaml``.

    python benchmarks/kan_study.py --data-root ../shared/data/CVC-ClinicDB            # 3 seeds, all arms
    python benchmarks/kan_study.py --arms conv,everywhere-d3 --seeds 1                # a subset

Runs live under ``--out`` (default ``runs/kan-study-cvc``); finished runs are reused, an interrupted one resumes.
Writes ``benchmarks/results/kan-study-cvc-cpu.json`` (rendered into ``benchmarks/README.md`` by
``benchmarks/make_readme.py``) and prints the table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from common import device_name, write_json  # noqa: E402

from kanseg.config import load_config, parse_model_spec  # noqa: E402
from kanseg.engine.benchmark import run_benchmark  # noqa: E402
from kanseg.engine.runlog import RunLog  # noqa: E402
from kanseg.viz.benchmarks import training_markdown  # noqa: E402

GRAM = "unet-conv@encoder_block=kan:gram"  # Gram KAN convs in every block (the decoder follows the encoder)
ARMS = {  # arm -> model spec (kanseg.config.parse_model_spec); the first arm is the reference
    "conv": "unet-conv",
    "everywhere-d3": GRAM,
    "everywhere-d2": f"{GRAM}@block_options.degree=2",
    "everywhere-d1": f"{GRAM}@block_options.degree=1",
    "encoder-only": f"{GRAM}@decoder_block=conv",
    "decoder-only": "unet-conv@decoder_block=kan:gram",
    "bottleneck-only": "unet-conv@bottleneck_block=kan:gram",
    "bottleneck-variant": "unet-conv@encoder_block=kan:gram-bottleneck",
    "kan-lr-3x": f"{GRAM}@optim.kan_lr=3e-3",
    "focal-mixer": f"{GRAM}@mixer=kan-focal",
    "noise-injection": f"{GRAM}@block_options.dropout=0.1@block_options.dropout_kind=noise",
}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "CVC-ClinicDB"))
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "kan-study-cvc.yaml")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from: {', '.join(ARMS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "kan-study-cvc")
    parser.add_argument("--name", default="kan-study-cvc-cpu.json", help="file under benchmarks/results/")
    parser.add_argument("--note", default="", help="conditions worth knowing (load, what else ran)")
    args = parser.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms or arms[0] != "conv":
        parser.error(f"arms must start with conv (the reference) and come from {', '.join(ARMS)}; got {arms}")
    base = load_config(args.config, {"data.data_root": args.data_root, "epochs": args.epochs})
    specs = [parse_model_spec(ARMS[a]) for a in arms]
    started = time.perf_counter()
    result = run_benchmark(base, specs, list(range(args.seeds)), args.out, match_params=True, log=RunLog(None))
    reference = result["rows"][0]["train_time_s"]["mean"]
    for arm, row in zip(arms, result["rows"]):
        row["spec"], row["model"] = row["model"], arm
        row["time_vs_reference"] = row["train_time_s"]["mean"] / reference
    result.update(machine=device_name(torch.device("cpu")), torch_threads=torch.get_num_threads(),
                  torch=torch.__version__, python=platform.python_version(), note=args.note,
                  reference="conv", config=str(args.config.relative_to(REPO)),
                  command=f"python benchmarks/kan_study.py --seeds {args.seeds}",
                  wall_s=round(sum(v for r in result["rows"] for v in r["train_time_s"]["values"]), 1),
                  this_call_s=round(time.perf_counter() - started, 1))
    out = write_json(args.name, result)
    print(training_markdown(result))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
