#!/usr/bin/env python
"""Copy a ``kanseg benchmark`` result into ``benchmarks/results/`` with the machine it ran on, so that
``benchmarks/make_readme.py`` can render it.

    kanseg benchmark --dataset ../shared/data/Task04_Hippocampus/dataset.json --config configs/hippocampus.yaml \\
        --models unet-conv@base_width=8,unet-gram,unet-gram-bottleneck --match-params --seeds 3 --epochs 6 \\
        --out runs/benchmark-hippocampus
    python benchmarks/collect.py runs/benchmark-hippocampus hippocampus-cpu.json --threads 2 \\
        --command "kanseg benchmark ... (the command above)" --note "what else ran on the machine"

The wall time is the sum of the runs' training times (``train_time_s`` of each run's ``summary.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", type=Path, help="the --out folder of kanseg benchmark (or its benchmark.json)")
    parser.add_argument("name", help="file name under benchmarks/results/, e.g. hippocampus-cpu.json")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of the runs")
    parser.add_argument("--command", default="", help="the kanseg benchmark command that made it")
    parser.add_argument("--note", default="", help="conditions worth knowing (load, what else ran)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # the machine label names the runs' thread count
    path = args.benchmark / "benchmark.json" if args.benchmark.is_dir() else args.benchmark
    result = json.loads(path.read_text())
    runs = [r["train_time_s"]["values"] for r in result["rows"] if r.get("train_time_s")]
    result.update(machine=device_name(torch.device("cpu")), torch_threads=args.threads, torch=torch.__version__,
                  python=platform.python_version(), command=args.command, note=args.note,
                  wall_s=round(sum(v for values in runs for v in values if v == v), 1))
    out = write_json(args.name, result)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
