"""`kanseg predict`: masks for new 2D images and 3D NIfTI volumes from a checkpoint."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from kanseg.cli import app
from kanseg.errors import KansegError


def parse_roi(roi: str | None, inputs: list[str]) -> tuple[int | tuple[int, ...] | None, list[str]]:
    """Window size from ``--roi`` and the input list.

    ``--roi`` takes ``256`` (every axis), ``256,256`` or ``96x96x64``. The spec form ``--roi 256 256`` also works:
    the command line parser gives ``--roi`` one value and leaves the others among the inputs, where
    a bare number that is not an existing path can only be a window size.
    """
    if roi is None:
        return None, inputs
    sizes = [s for s in re.split(r"[,x\s]+", roi.strip()) if s]
    rest = []
    for item in inputs:
        if item.isdigit() and not Path(item).exists():
            sizes.append(item)
        else:
            rest.append(item)
    if not sizes or not all(s.isdigit() and int(s) > 0 for s in sizes):
        raise KansegError(f"--roi expects positive sizes like 256 256 or 96x96x64, got {roi!r}")
    return (int(sizes[0]) if len(sizes) == 1 else tuple(int(s) for s in sizes)), rest  # one size: every axis


CHECKPOINT_SUFFIXES = (".pt", ".pth")


def split_checkpoints(checkpoints: list[Path], inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Checkpoints from ``--checkpoint`` and the input list.

    ``--checkpoint a.pt b.pt c.pt`` (an ensemble) leaves ``b.pt c.pt`` among the inputs, like ``--roi 256 256``;
    a ``.pt`` / ``.pth`` file can only be a checkpoint (inputs are images and NIfTI volumes). ``--checkpoint``
    may also be repeated.
    """
    extra = [Path(item) for item in inputs if Path(item).suffix.lower() in CHECKPOINT_SUFFIXES]
    return [*checkpoints, *extra], [item for item in inputs if Path(item).suffix.lower() not in CHECKPOINT_SUFFIXES]


@app.command("predict")
def predict_cmd(
    inputs: list[str] = typer.Argument(..., help="Image / NIfTI files or folders (searched recursively)."),
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", "-c", help="A checkpoint, e.g. RUN_DIR/best.pt; "
                                          "several (a.pt b.pt ...) make an ensemble: probabilities averaged."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    roi: str = typer.Option(None, "--roi", help="Window size: 256 256 (2D), 96 96 96 (3D). "
                            "Default: the checkpoint's patch / image size."),
    overlap: float = typer.Option(0.5, "--overlap", help="Window overlap fraction in [0, 1)."),
    sw_batch_size: int = typer.Option(4, "--sw-batch-size", help="Windows per forward pass."),
    blend: str = typer.Option("gaussian", "--blend", help="Window blending: gaussian | constant."),
    tta: bool = typer.Option(False, "--tta", help="Average over all flips of the spatial axes."),
    threshold: float = typer.Option(0.5, "--threshold", help="Foreground probability threshold (binary models; "
                                    "multi-class models take the most probable class)."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write probability maps "
                                            "(multi-class: one per class)."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write overlay PNGs, one colour per class "
                                 "(3D: mid-slices)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Predict masks for new scans (PNG/JPEG/TIFF/BMP images, NIfTI volumes).

    Writes NAME_mask.png (2D, 0/255; multi-class: the dataset's label values) or NAME_mask.nii.gz
    (3D, uint8 with the input's affine and header), plus NAME_prob.* (multi-class: NAME_prob_CLASS.png
    per class in 2D, one 4D NIfTI in 3D) and NAME_overlay.png on request. A bad file gets one error line and the others
    go on; the exit code is 2 when any input failed. Models of C > 1 input channels take nnU-Net channel files:
    CASE_0000 ... CASE_{C-1} (same folder and suffix) are one case CASE.
    """
    from kanseg.cli.checks import check_files

    roi_size, inputs = parse_roi(roi, inputs)
    checkpoints, inputs = split_checkpoints(checkpoint, inputs)
    if not inputs:
        raise KansegError("no input files given")
    check_files(checkpoints, "checkpoint")  # before torch and MONAI are imported
    check_files(inputs, "input")
    from kanseg.inference import PredictionOutcome, predict
    progress = sys.stderr.isatty()

    def report_one(index: int, total: int, outcome: PredictionOutcome) -> None:
        if outcome.error:
            typer.echo(f"error: {outcome.error}", err=True)
        elif not progress:  # plain log lines when there is no progress bar (CI, files)
            typer.echo(f"[{index}/{total}] {outcome.source} -> {outcome.outputs['mask']} ({outcome.seconds:.1f}s)")

    if len(checkpoints) > 1:
        typer.echo(f"ensemble of {len(checkpoints)} checkpoints: probabilities averaged", err=True)
    report = predict(
        checkpoints,
        inputs,
        out,
        save_probabilities=save_probabilities,
        overlay=overlay,
        progress=progress,
        on_outcome=report_one,
        roi_size=roi_size,
        overlap=overlap,
        sw_batch_size=sw_batch_size,
        blend=blend,
        tta=tta,
        threshold=threshold,
        device=device,
    )
    typer.echo(f"{report.summary()}; outputs in {out}")
    if not report.ok:
        raise typer.Exit(KansegError.exit_code)
