"""The ``kanseg`` command line.

Each command group lives in its own module and registers itself on :data:`app`:
``models`` (kanseg.cli.models), ``data`` (kanseg.cli.data), ``peft`` (kanseg.cli.peft), ``train/evaluate/benchmark/demo``
(kanseg.cli.train), ``predict`` (kanseg.cli.predict), ``export`` (kanseg.cli.export). Errors derived from
:class:`kanseg.errors.KansegError` become one ``error: ...`` line and exit code 2, and so do usage errors
(unknown flag, bad value); Ctrl-C during ``train``, ``predict`` or ``benchmark`` one ``interrupted: ...`` line
(what was done, how to go on) and 130. Names and paths are checked (:mod:`kanseg.cli.checks`) before torch or
MONAI is imported, so such errors take well under a second.
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
    # click's exception classes, whether typer uses click or its own copy of it (typer >= 0.25)
    click_errors = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
    try:
        code = app(args=argv, standalone_mode=False)
    except click_errors["UsageError"] as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # `kanseg data` alone: its help, as before
            err.show()
        else:  # bad flag, bad value, missing option: one line, no box
            where = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            typer.echo(f"error: {err.format_message()}{where}", err=True)
        sys.exit(err.exit_code)
    except click_errors["ClickException"] as err:
        typer.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
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
    sys.exit(code if isinstance(code, int) else 0)  # as click's standalone mode: typer.Exit(n) -> n


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
