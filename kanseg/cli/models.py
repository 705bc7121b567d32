"""`kanseg models`: list KAN families (the model presets arrive with the templates)."""

from __future__ import annotations

import typer

from kanseg.cli import app


@app.command("models")
def models_cmd(details: bool = typer.Option(False, "--details", help="Show parameters and FLOPs.")) -> None:
    """List the available KAN convolution families and model presets."""
    from kanseg.kan import list_families

    typer.echo("KAN convolution families:")
    for name in list_families():
        typer.echo(f"  {name}")
