"""``kanseg data verify|prepare``: check a dataset copy against its manifest; cache resized arrays."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import typer

from kanseg.cli import app

data_app = typer.Typer(help="Check and prepare datasets (busi, glas, cvc, demo, or a dataset.json).",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

DATASET = typer.Option(..., "--dataset", help="busi, glas, cvc, demo, or a path to a dataset.json.")
DATA_ROOT = typer.Option(None, "--data-root", help="Folder holding the dataset (official or U-KAN layout).")


def _progress(description: str):
    """tqdm bar on a terminal, nothing otherwise (CI logs, files)."""

    def wrap(iterable: Iterable, total: int) -> Iterable:
        if not sys.stderr.isatty():
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=description, leave=False)

    return wrap


@data_app.command("verify")
def verify_command(
    dataset: str = DATASET,
    data_root: Path = DATA_ROOT,
    checksums: bool = typer.Option(False, "--checksums", help="Also compare sha256 with the release."),
) -> None:
    """Counts, missing / extra / corrupt / size-mismatched files: one line each, then a summary.

    Exit code 0 only if the copy is usable for kanseg's splits.
    """
    from kanseg.cli.checks import check_dataset

    check_dataset(dataset, data_root)  # before MONAI is imported
    from kanseg.data.verify import verify

    report = verify(dataset, data_root, checksums=checksums, progress=_progress("verify"))
    for line in report.lines():
        typer.echo(line)
    raise typer.Exit(0 if report.usable else 1)


@data_app.command("prepare")
def prepare_command(
    dataset: str = DATASET,
    data_root: Path = DATA_ROOT,
    image_size: int = typer.Option(None, "--image-size", help="Side length (default: the dataset's)."),
) -> None:
    """Cache resized images and masks so training skips decoding and resizing."""
    from kanseg.cli.checks import check_dataset

    check_dataset(dataset, data_root)  # before MONAI is imported
    from kanseg.data.verify import prepare

    folder, count = prepare(dataset, data_root, image_size=image_size, progress=_progress("prepare"))
    typer.echo(f"cached {count} cases in {folder} (used automatically by training at this image size)")
