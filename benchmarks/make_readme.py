#!/usr/bin/env python
"""Refresh the measured tables in ``benchmarks/README.md`` from ``benchmarks/results/*.json``.

The README's prose is written by hand; each table sits between two markers and is rewritten from its JSON:

    <!-- table: layers-cpu.json -->
    ...generated...
    <!-- end table -->

    python benchmarks/make_readme.py            # rewrite the tables in place (atomically), redraw the figures
    python benchmarks/make_readme.py --check    # exit 1 if a table is stale or a result has no marker

Figures: ``figures/kan-study-cvc-pareto.png`` (test Dice against training time with the Pareto front, from the
KAN study's results; not compared by ``--check``, PNG bytes depend on the matplotlib version).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from kanseg.atomic import write_text_atomic
from kanseg.viz.benchmarks import load_results, results_markdown

HERE = Path(__file__).resolve().parent
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w.\-]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def machine_line(result: dict) -> str:
    machine = result.get("machine") or result.get("device") or "unknown machine"
    extra = [f"torch {result['torch']}"] if result.get("torch") else []
    if result.get("torch_threads"):
        extra.append(f"{result['torch_threads']} torch thread(s)")
    if result.get("kernels") or result.get("kanseg_kernels"):
        extra.append(f"KANSEG_KERNELS={result.get('kernels') or 'see table'}")
    if result.get("wall_s"):
        extra.append(f"{result['wall_s'] / 60:.0f} min wall")
    return f"Measured on: {machine}" + (f" ({', '.join(extra)})" if extra else "") + "."


def render(readme: str, results: dict[str, dict]) -> tuple[str, list[str], list[str]]:
    """README text with every marked table re-rendered; also the marker names without a result file and the
    result files without a marker."""
    used, missing = set(), []

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in results:
            missing.append(name)
            return match.group(0)
        used.add(name)
        table = machine_line(results[name]) + "\n\n" + results_markdown(results[name])
        return f"{match.group(1)}{table}\n{match.group(4)}"

    text = BLOCK.sub(replace, readme)
    return text, missing, sorted(set(results) - used)


FIGURES = {  # figure -> (result files drawn together, legend labels)
    "kan-study-cvc-pareto.png": {"kan-study-cvc-cpu.json": "equal parameters, 12 epochs",
                                 "kan-study-cvc-timematched-cpu.json": "conv at the Gram U-Net's time",
                                 "kan-study-cvc-confirm-cpu.json": "5 seeds (confirmation)"},
}


def draw_figures(results: dict[str, dict], folder: Path) -> list[Path]:
    """Every figure of :data:`FIGURES` whose results are all present, written to ``folder``."""
    from kanseg.viz.benchmarks import plot_pareto
    from kanseg.viz.figures import figure_png

    written = []
    for name, sources in FIGURES.items():
        if all(source in results for source in sources):
            fig = plot_pareto({label: results[source] for source, label in sources.items()})
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(figure_png(fig, dpi=110))
            written.append(folder / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--check", action="store_true", help="report stale tables instead of writing")
    args = parser.parse_args(argv)
    readme = args.readme.read_text()
    text, missing, unplaced = render(readme, load_results(args.results))
    for name in missing:
        print(f"warning: marker for {name} but no such result in {args.results}", file=sys.stderr)
    for name in unplaced:
        print(f"note: {name} has no '<!-- table: {name} -->' marker in {args.readme.name}", file=sys.stderr)
    if args.check:
        stale = text != readme
        print("tables are stale: run python benchmarks/make_readme.py" if stale else "tables are up to date")
        return 1 if stale or unplaced else 0
    if text != readme:
        write_text_atomic(args.readme, text)
        print(f"updated {args.readme}")
    for path in draw_figures(load_results(args.results), args.readme.parent / "figures"):
        print(f"drew {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
