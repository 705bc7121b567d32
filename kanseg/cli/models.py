"""`kanseg models`: KAN families, block names and model presets (with parameters and FLOPs on request)."""

from __future__ import annotations

import typer

from kanseg.cli import app


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _peft_counts(model) -> str:
    """``"trainable / frozen"`` parameters (millions) after ``apply_peft(model, extra_degrees=1)``, or ``-``."""
    from kanseg.errors import KansegError
    from kanseg.kan.peft import apply_peft, count_parameters

    try:
        apply_peft(model, extra_degrees=1)
    except KansegError:
        return "-"
    counts = count_parameters(model)
    return f"{counts['trainable'] / 1e6:.2f} M / {counts['frozen'] / 1e6:.2f} M"


def _measure(name: str, spatial_dims: int, shape: tuple[int, ...]):
    """Complexity of preset ``name`` at ``shape``; an input too small for the preset (a norm over a single voxel
    at the deepest level) is one line naming the preset and the size. 2D-only presets raise ModelConfigError."""
    from kanseg.errors import KansegError
    from kanseg.models import ModelConfigError, create_model
    from kanseg.models.complexity import measure_complexity

    model = create_model(name, spatial_dims=spatial_dims, in_channels=shape[0], out_channels=1)
    try:
        return measure_complexity(model, shape)
    except ModelConfigError:
        raise
    except (ValueError, RuntimeError) as err:
        size = shape[1]
        raise KansegError(f"{name}: cannot measure a {spatial_dims}D input of size {size} "
                          f"({str(err).splitlines()[0]}); pass a larger --size-{spatial_dims}d, "
                          f"e.g. {size * 2}") from None


@app.command("models")
def models_cmd(
    details: bool = typer.Option(False, "--details", help="Show parameters and FLOPs per image (2D and 3D)."),
    pattern: str = typer.Option("*", "--pattern", help="Only presets matching this pattern, e.g. 'unet-*'."),
    size_2d: int = typer.Option(256, "--size-2d", min=8, help="2D input size for FLOPs (square)."),
    size_3d: int = typer.Option(96, "--size-3d", min=8, help="3D input size for FLOPs (cube)."),
    recommended: bool = typer.Option(False, "--recommended", help="Only the presets kanseg's measurements back."),
) -> None:
    """List the KAN convolution families, block names and model presets."""
    from kanseg.kan import list_families
    from kanseg.models import ModelConfigError, create_model, get_preset, list_models

    typer.echo(f"KAN convolution families: {', '.join(list_families())}")
    typer.echo("Blocks: conv, kan:<family>, kan:<family>-bottleneck")
    names = list_models(pattern)
    if recommended:
        names = [n for n in names if get_preset(n).recommended]
    if not names:
        pool = [n for n in list_models() if get_preset(n).recommended or not recommended]
        kind = "recommended model preset" if recommended else "model preset"
        typer.echo(f"No {kind} matches {pattern!r}; {kind}s: {', '.join(pool)}")
        return
    header = ["model", "template", "blocks"]
    if details:
        header += ["params 2D", f"GFLOPs 2D {size_2d}^2", "params 3D", f"GFLOPs 3D {size_3d}^3",
                   "PEFT E=1 2D trainable/frozen"]
    else:
        header += ["description"]
    rows = []
    for name in names:
        preset = get_preset(name)
        row = [f"{name} *" if preset.recommended else name, preset.template.__name__, preset.blocks]
        if details:
            c2 = _measure(name, 2, (3, size_2d, size_2d))
            try:  # 2D-only presets (smp-*) have no 3D row
                c3 = _measure(name, 3, (1, size_3d, size_3d, size_3d))
                params_3d, flops_3d = f"{c3.params / 1e6:.2f} M", f"{c3.flops / 1e9:.0f}"
            except ModelConfigError:
                params_3d = flops_3d = "-"
            row += [f"{c2.params / 1e6:.2f} M", f"{c2.flops / 1e9:.1f}", params_3d,
                    flops_3d, _peft_counts(create_model(name, spatial_dims=2, in_channels=3,
                                                                        out_channels=1))]
        else:
            row += [preset.description]
        rows.append(row)
    typer.echo(f"\nModel presets ({len(rows)}):")
    typer.echo(_table(header, rows))
    if any(get_preset(n).recommended for n in names):
        typer.echo("\n* recommended: backed by kanseg's own multi-seed measurements on real data "
                   "(benchmarks/README.md, 'Where KAN convolutions pay').")
    if details:
        typer.echo(
            f"\nPer image, eval mode: 2D with 3 -> 1 channels at {size_2d}x{size_2d}, 3D with 1 -> 1 channels at "
            f"{size_3d}^3. FLOPs = 2 x conv MACs + elementwise ops (KAN basis, norms, activations, up/down-sampling);"
            " see kanseg.models.complexity. PEFT E=1: parameters trained / frozen after"
            " kanseg.kan.peft.apply_peft(model, extra_degrees=1) ('-': no KAN conv it can wrap)."
        )
