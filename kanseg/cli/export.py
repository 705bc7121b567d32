"""`kanseg export`: a checkpoint as ONNX, TorchScript or safetensors (+ config.json), checked against the model."""

from __future__ import annotations

from pathlib import Path

import typer

from kanseg.cli import app


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="A checkpoint (RUN_DIR/best.pt) or a run folder."),
    fmt: str = typer.Option(..., "--format", "-f", help="onnx | torchscript | safetensors"),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; files in it are replaced atomically)."),
    opset: int = typer.Option(17, "--opset", min=13, help="ONNX opset version."),
) -> None:
    """Export a trained model for use outside kanseg, checked against the eager model.

    onnx: model.onnx (input 'image', output 'logits', dynamic batch and spatial size), compared with
    onnxruntime. torchscript: model.torchscript.pt (traced). safetensors: model.safetensors, loaded by
    kanseg.models.from_pretrained(OUT). Each writes config.json: model, preprocessing, kanseg version.
    """
    from kanseg.export import check_request

    checkpoint, fmt, out = check_request(checkpoint, fmt, out)  # before torch is imported

    from kanseg.export import TOLERANCE, export_checkpoint

    result = export_checkpoint(checkpoint, fmt, out, opset=opset)
    typer.echo(f"wrote {', '.join(str(p) for p in result.files)}")
    shapes = ", ".join("x".join(map(str, s)) for s in result.input_shapes)
    if result.max_abs_diff is None:
        typer.echo(result.note)
    else:
        typer.echo(f"checked against the eager model on inputs {shapes}: max abs difference "
                   f"{result.max_abs_diff:.3g} (tolerance {TOLERANCE:g})")
