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

Then the budget matched by wall time instead: the conv U-Net trained for as long as the Gram U-Net (arm
``everywhere-d3``) took, by ``kanseg benchmark --match-time`` (more epochs for the faster model; the step-time ratio
is measured in the same process). ``--no-time-matched`` skips it.

Then a confirmation of the one arm that beat the conv in 3 seeds (``bottleneck-only``): 5 seeds of it, of the conv,
and of a control with the conv at the same (narrower) widths, so that the KAN bottleneck and the width change are
told apart. ``--confirm-seeds 0`` skips it.

Runs live under ``--out`` (default ``runs/kan-study-cvc``); finished runs are reused, an interrupted one resumes.
Writes ``benchmarks/results/kan-study-cvc-cpu.json``, ``kan-study-cvc-timematched-cpu.json`` and
``kan-study-cvc-confirm-cpu.json`` (rendered into
``benchmarks/README.md`` by ``benchmarks/make_readme.py``) and prints the tables.
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
    parser.add_argument("--no-time-matched", dest="time_matched", action="store_false",
                        help="skip the conv U-Net at the Gram U-Net's training time")
    parser.add_argument("--time-matched-epochs", type=int, default=None,
                        help="the conv's epochs in the time-matched comparison (default: --match-time decides)")
    parser.add_argument("--confirm-seeds", type=int, default=5, help="seeds of the confirmation (0: skip it)")
    args = parser.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms or arms[0] != "conv":
        parser.error(f"arms must start with conv (the reference) and come from {', '.join(ARMS)}; got {arms}")
    base = load_config(args.config, {"data.data_root": args.data_root, "epochs": args.epochs})
    specs = [parse_model_spec(ARMS[a]) for a in arms]
    started = time.perf_counter()
    result = run_benchmark(base, specs, list(range(args.seeds)), args.out, match_params=True, log=RunLog(None))
    _save(result, arms, args, args.name, started)
    if args.time_matched and "everywhere-d3" in arms:
        kan = result["rows"][arms.index("everywhere-d3")]["spec"]  # the Gram U-Net at the conv's parameters
        started = time.perf_counter()
        conv = "unet-conv@base_width=8" + (f"@epochs={args.time_matched_epochs}" if args.time_matched_epochs else "")
        timed = run_benchmark(base, [parse_model_spec(kan), parse_model_spec(conv)], list(range(args.seeds)),
                              args.out, match_time=True, log=RunLog(None))
        _save(timed, ["everywhere-d3", "conv (time-matched)"], args, args.name.replace("-cpu", "-timematched-cpu"),
              started)
    if args.confirm_seeds and "bottleneck-only" in arms:
        kan = parse_model_spec(result["rows"][arms.index("bottleneck-only")]["spec"])
        control = parse_model_spec(f"unet-conv@base_width={kan.kwargs['base_width']}")  # same widths, all conv
        started = time.perf_counter()
        confirm = run_benchmark(base, [specs[0], kan, control], list(range(args.confirm_seeds)), args.out,
                                log=RunLog(None))
        _save(confirm, ["conv", "bottleneck-only", f"conv at base width {kan.kwargs['base_width']}"], args,
              args.name.replace("-cpu", "-confirm-cpu"), started)
    return REPO / "benchmarks" / "results" / args.name


def _save(result: dict, arms: list[str], args: argparse.Namespace, name: str, started: float) -> Path:
    """Rows named by arm (their specs kept), time relative to the first arm, the machine; written and printed."""
    reference = result["rows"][0]["train_time_s"]["mean"]
    for arm, row in zip(arms, result["rows"]):
        row["spec"], row["model"] = row["model"], arm
        row["time_vs_reference"] = row["train_time_s"]["mean"] / reference
    result.update(machine=device_name(torch.device("cpu")), torch_threads=torch.get_num_threads(),
                  torch=torch.__version__, python=platform.python_version(), note=args.note,
                  reference=arms[0], config=str(args.config.resolve().relative_to(REPO)),
                  command=f"python benchmarks/kan_study.py --seeds {args.seeds}",
                  wall_s=round(sum(v for r in result["rows"] for v in r["train_time_s"]["values"]), 1),
                  this_call_s=round(time.perf_counter() - started, 1))
    out = write_json(name, result)
    print(training_markdown(result))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
