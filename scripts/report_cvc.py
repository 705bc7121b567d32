#!/usr/bin/env python
"""The CPU benchmark on the real CVC-ClinicDB release: ``unet-conv`` vs ``unet-gram`` vs ``unet-gram-bottleneck``.

Clean protocol: the manifest's ``clean`` split (contiguous blocks of frame ids: train 1-428, val 429-503,
test 504-612), model selection on val, scores on test, several seeds, mean ± std. Settings start from
``configs/cpu-quick.yaml`` (96×96 images, base width 8, depth 4) and are small enough for a laptop CPU.
Training goes through :func:`kanseg.engine.run_benchmark` (finished runs are reused, stopped ones resumed);
this script adds the machine, the settings and the wall time and writes ``benchmarks/results/cvc-cpu.json``.

    python scripts/report_cvc.py                                   # ../shared/data/CVC-ClinicDB, 3 seeds
    python scripts/report_cvc.py --data-root ~/data/CVC-ClinicDB --epochs 20 --out runs/report-cvc
    python benchmarks/make_readme.py                               # then refresh benchmarks/README.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from common import device_name  # noqa: E402  (benchmarks/common.py: the machine label every result carries)

from kanseg.atomic import write_text_atomic  # noqa: E402
from kanseg.config import load_config  # noqa: E402
from kanseg.engine import run_benchmark  # noqa: E402

MODELS = ("unet-conv", "unet-gram", "unet-gram-bottleneck")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(REPO / ".." / "shared" / "data" / "CVC-ClinicDB"))
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-quick.yaml"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--image-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--out", default=str(REPO / "runs" / "report-cvc"), help="run directories")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 is fastest on a shared machine); default: torch's")
    parser.add_argument("--result", default=str(REPO / "benchmarks" / "results" / "cvc-cpu.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, {"data.dataset": "cvc", "data.data_root": str(Path(args.data_root).resolve()),
                                    "data.split": "clean", "epochs": args.epochs,
                                    "data.image_size": args.image_size, "device": "cpu"})
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    started = time.perf_counter()
    result = run_benchmark(cfg, models, list(range(args.seeds)), args.out, subset="test")
    result.update(
        machine=device_name(torch.device("cpu")), torch_threads=torch.get_num_threads(),
        torch=torch.__version__, python=platform.python_version(),
        kernels=os.environ.get("KANSEG_KERNELS", "auto"), wall_s=round(time.perf_counter() - started, 1),
        settings={"config": Path(args.config).name, "image_size": cfg.data.image_size,
                  "model_kwargs": cfg.model.kwargs, "batch_size": cfg.batch_size, "optim": cfg.optim.model_dump(),
                  "loss": cfg.loss.model_dump(), "augment": cfg.data.augment, "monitor": cfg.monitor},
        command="python scripts/report_cvc.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    write_text_atomic(args.result, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.result} ({result['wall_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
