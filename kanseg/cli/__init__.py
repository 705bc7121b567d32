"""The ``kanseg`` command line.

Each command group lives in its own module and registers itself on :data:`app`:
``models`` (kanseg.cli.models), ``data`` (kanseg.cli.data), ``peft`` (kanseg.cli.peft), ``train/evaluate/benchmark/demo``
(kanseg.cli.train), ``predict`` (kanseg.cli.predict), ``export`` (kanseg.cli.export). Errors derived from
:class:`kanseg.errors.KansegError` become one ``error: ...`` line and exit code 2; Ctrl-C during
``train``, ``predict`` or ``benchmark`` one ``interrupted: ...`` line (what was done, how to go on) and 130.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer  # noqa: E402

from kanseg import __version__  # noqa: E402
from kanseg.errors import Interrupted, KansegError  # noqa: E402

app = typer.Typer(
    name="kanseg",
    help="Medical image segmentation with Kolmogorov-Arnold (KAN) convolutions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"kanseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Medical image segmentation with Kolmogorov-Arnold (KAN) convolutions."""


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    from kanseg.cli import data, export, models, peft, predict, train  # noqa: F401


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``kanseg`` console script."""
    try:
        app(args=argv, standalone_mode=True)
    except Interrupted as err:
        if str(err):
            typer.echo(f"interrupted: {err}", err=True)
        sys.exit(err.exit_code)
    except KansegError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except Exception as err:
        # A KansegError raised inside a DataLoader worker comes back re-wrapped with the worker's traceback in
        # its message; show only the original one-line message.
        message = _worker_kanseg_error(err)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(KansegError.exit_code)


def _worker_kanseg_error(err: BaseException) -> str | None:
    """The one-line message of a KansegError (or subclass) re-raised from a DataLoader worker, or None."""
    import importlib
    import re

    lines = str(err).strip().splitlines()
    if not lines or "DataLoader worker" not in lines[0]:
        return None
    match = re.match(r"([\w.]+)\.(\w+): (.*)", lines[-1])
    if not match:
        return None
    try:
        cls = getattr(importlib.import_module(match.group(1)), match.group(2))
    except (ImportError, AttributeError):
        return None
    return match.group(3) if isinstance(cls, type) and issubclass(cls, KansegError) else None
