#!/usr/bin/env python
"""Refresh the measured tables in ``benchmarks/README.md`` from ``benchmarks/results/*.json``.

The README's prose is written by hand; each table sits between two markers and is rewritten from its JSON:

    <!-- table: layers-cpu.json -->
    ...generated...
    <!-- end table -->

    python benchmarks/make_readme.py            # rewrite the tables in place (atomically)
    python benchmarks/make_readme.py --check    # exit 1 if a table is stale or a result has no marker
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
