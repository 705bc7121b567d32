"""Predicting files and folders: :func:`predict` (the API behind ``kanseg predict``).

Each input file is handled on its own: a bad file (unreadable, wrong channel count, 2D checkpoint on
a 3D volume or the reverse, absurd NIfTI header) becomes one line in the report and the batch goes
on. Outputs, per input ``<name>`` (folder inputs keep their sub-folders under ``out_dir``):

- 2D: ``<name>_mask.png`` (binary: 0/255; multi-class: the dataset's label values, e.g. 0/1/2),
  ``<name>_prob.png`` (foreground probability x 255; multi-class: ``<name>_prob_<class>.png``, one
  per class, background included), ``<name>_overlay.png`` (one colour per class).
- 3D: ``<name>_mask.nii[.gz]`` (uint8 {0, 1} or label values, the input's affine and header),
  ``<name>_prob.nii[.gz]`` (float32; multi-class: 4D ``(X, Y, Z, K)``, channel k = class k),
  ``<name>_overlay.png`` (the three orthogonal mid-slices).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kanseg.atomic import remove_stale_temps
from kanseg.errors import Interrupted, KansegError
from kanseg.inference import overlays, readers, writers
from kanseg.inference.ensemble import EnsemblePredictor
from kanseg.inference.predictor import Predictor, foreground_probability, probabilities_to_mask


@dataclass
class PredictionOutcome:
    """What happened to one input: the files written, or the one-line error."""

    source: Path
    outputs: dict[str, Path] = field(default_factory=dict)  # "mask" | "probabilities" | "overlay" -> path
    error: str | None = None
    seconds: float = 0.0


@dataclass
class PredictionReport:
    """All outcomes of a :func:`predict` call, in input order."""

    outcomes: list[PredictionOutcome]

    @property
    def failures(self) -> list[PredictionOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        done = len(self.outcomes) - len(self.failures)
        return f"{done} of {len(self.outcomes)} inputs predicted, {len(self.failures)} failed"


def _one_line(path: Path, message: str) -> str:
    """First line of ``message``, prefixed with the file unless it already names it."""
    line = (message.strip().splitlines() or ["unknown error"])[0]
    return line if str(path) in line else f"{path}: {line}"


def _check_kind(path: Path, spatial_dims: int) -> None:
    if readers.scan_suffix(path) == "":
        supported = ", ".join(readers.IMAGE_SUFFIXES + readers.NIFTI_SUFFIXES)
        raise KansegError(f"{path}: unsupported file type (supported: {supported})")
    volume = readers.is_volume(path)
    if volume and spatial_dims == 2:
        raise KansegError(f"{path}: a 3D NIfTI volume, but the checkpoint holds a 2D model")
    if not volume and spatial_dims == 3:
        raise KansegError(f"{path}: a 2D image, but the checkpoint holds a 3D model")


def _class_labels(predictor: Predictor | EnsemblePredictor, n_channels: int) -> tuple[list[str], list[int] | None]:
    """File-safe class names and on-disk label values of a multi-class checkpoint (indices when absent)."""
    pp = predictor.preprocessing
    names = list(pp.get("classes") or [f"class{k}" for k in range(n_channels)])
    if len(names) != n_channels:
        raise KansegError(f"the checkpoint names {len(names)} classes but its model has {n_channels} outputs")
    safe = [re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or f"class{k}" for k, name in enumerate(names)]
    return safe, pp.get("label_values")


def predict_scan(
    predictor: Predictor | EnsemblePredictor,
    path: str | os.PathLike | Sequence[str | os.PathLike],
    out_stem: str | os.PathLike,
    *,
    save_probabilities: bool = False,
    overlay: bool = False,
    progress: bool = False,
) -> dict[str, Path]:
    """Predict one file (or the channel files of one case, in channel order) and write its outputs next to
    ``out_stem`` (``DIR/name`` without suffix).

    Output keys: ``mask``, ``overlay``, ``probabilities`` (binary and 3D) or ``probabilities_<class>``
    (2D multi-class, one PNG per class).
    """
    files = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    path, out_stem = files[0], Path(out_stem)
    for file in files:
        _check_kind(file, predictor.spatial_dims)
    outputs: dict[str, Path] = {}
    named = lambda kind, suffix: out_stem.with_name(f"{out_stem.name}_{kind}{suffix}")  # noqa: E731
    if predictor.spatial_dims == 2:
        native = readers.read_image(files)
        if len(files) > 1 and native.shape[-1] != predictor.in_channels:
            raise KansegError(f"{path}: its {len(files)} channel files hold {native.shape[-1]} channels but the "
                              f"model expects {predictor.in_channels}")
        prob = predictor.predict_array(native)
        mask = probabilities_to_mask(prob, predictor.threshold)
        if prob.shape[0] == 1:
            outputs["mask"] = writers.write_png(named("mask", ".png"), mask * np.uint8(255))
            if save_probabilities:
                fg = (foreground_probability(prob).numpy() * 255).round().astype(np.uint8)
                outputs["probabilities"] = writers.write_png(named("prob", ".png"), fg)
        else:
            names, values = _class_labels(predictor, prob.shape[0])
            outputs["mask"] = writers.write_png(named("mask", ".png"), writers.label_map(mask, values))
            if save_probabilities:
                for k, name in enumerate(names):
                    channel = (prob[k].numpy() * 255).round().astype(np.uint8)
                    outputs[f"probabilities_{name}"] = writers.write_png(named(f"prob_{name}", ".png"), channel)
        if overlay:
            outputs["overlay"] = writers.write_png(named("overlay", ".png"), overlays.overlay_mask(native, mask))
        return outputs
    volume, reference = readers.read_volume(files, predictor.in_channels)
    slices = overlays.mid_slices(volume) if overlay else None
    # the preprocessing (reorientation, resampling) is undone onto the scan's own voxel grid
    prob = predictor.predict_volume(volume, reference.affine, progress=progress)
    del volume
    suffix = readers.scan_suffix(path)
    mask = probabilities_to_mask(prob, predictor.threshold)
    multiclass = prob.shape[0] > 1
    labels = writers.label_map(mask, _class_labels(predictor, prob.shape[0])[1]) if multiclass else mask
    outputs["mask"] = writers.write_nifti(named("mask", suffix), labels, reference)
    if save_probabilities:
        fg = prob.permute(1, 2, 3, 0).contiguous().numpy() if multiclass else foreground_probability(prob).numpy()
        outputs["probabilities"] = writers.write_nifti(named("prob", suffix), fg, reference)
    if overlay:
        spacing = tuple(float(z) for z in reference.header.get_zooms()[:3])
        picture = overlays.mid_slice_overlay(slices, overlays.mid_slices(mask), spacing)
        outputs["overlay"] = writers.write_png(named("overlay", ".png"), picture)
    return outputs


def predict(
    checkpoint: str | os.PathLike | Sequence[str | os.PathLike] | Predictor | EnsemblePredictor,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    save_probabilities: bool = False,
    overlay: bool = False,
    progress: bool | None = None,
    on_outcome: Callable[[int, int, PredictionOutcome], Any] | None = None,
    **predictor_options: Any,
) -> PredictionReport:
    """Predict every input file (files or folders of PNG/JPEG/TIFF/BMP images and NIfTI volumes).

    Args:
        checkpoint: a ``best.pt`` path, several (an ensemble: probabilities averaged, see
            :class:`~kanseg.inference.ensemble.EnsemblePredictor`), or a ready (ensemble) predictor.
        inputs: one path or a list of paths; folders are searched recursively. For a model of C > 1 input
            channels, nnU-Net channel files ``<case>_0000`` ... ``<case>_{C-1}`` are one case ``<case>``.
        out_dir: where outputs go (created if needed).
        save_probabilities, overlay: also write probability maps / overlay PNGs.
        progress: tqdm progress bar; default: when stderr is a terminal.
        on_outcome: called as ``on_outcome(index, total, outcome)`` after each input (1-based index).
        predictor_options: ``roi_size``, ``overlap``, ``sw_batch_size``, ``blend``, ``tta``,
            ``threshold``, ``device`` (see :class:`Predictor`).

    Returns:
        A :class:`PredictionReport`; per-file problems are in it, never raised. Problems with the
        checkpoint, options or a missing input path raise :class:`KansegError`.
    """
    if isinstance(checkpoint, (Predictor, EnsemblePredictor)):
        if predictor_options:
            raise KansegError(f"options {sorted(predictor_options)} only apply when loading a checkpoint")
        predictor = checkpoint
    elif isinstance(checkpoint, (str, os.PathLike)) or len(checkpoint) == 1:
        single = checkpoint if isinstance(checkpoint, (str, os.PathLike)) else checkpoint[0]
        predictor = Predictor.from_checkpoint(single, **predictor_options)
    else:
        predictor = EnsemblePredictor.from_checkpoints(checkpoint, **predictor_options)
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    scans = readers.collect_inputs(paths, channels=predictor.in_channels)
    if not scans:
        raise KansegError(f"no supported files in {', '.join(map(str, paths))}")
    out_dir = Path(out_dir)
    progress = sys.stderr.isatty() if progress is None else progress
    outcomes: list[PredictionOutcome] = []
    taken: set[Path] = set()
    iterator = scans
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(scans, desc="predict", unit="file")
    for scan in scans:  # temporary files of this batch's outputs left by an earlier run killed inside a write
        outputs = [f"{scan.relative.name}_{kind}." for kind in ("mask", "prob", "overlay")]
        remove_stale_temps((out_dir / scan.relative).parent, outputs)
    try:
        for index, scan in enumerate(iterator, start=1):
            _predict_one(predictor, scan, out_dir, index, len(scans), outcomes, taken, on_outcome,
                         save_probabilities=save_probabilities, overlay=overlay, progress=progress)
    except KeyboardInterrupt:
        raise _interrupted(scans, outcomes, out_dir) from None
    return PredictionReport(outcomes)


def _interrupted(scans: list, outcomes: list[PredictionOutcome], out_dir: Path) -> Interrupted:
    """Ctrl-C: what was finished (outputs are complete files: every write is atomic) and what was not."""
    done = len(outcomes) - sum(o.error is not None for o in outcomes)
    left = scans[len(outcomes):]
    where = f" at {left[0].path}" if left else ""
    return Interrupted(f"prediction interrupted (Ctrl-C){where}: {done} of {len(scans)} inputs finished "
                       f"(outputs in {out_dir}), {len(outcomes) - done} failed, {len(left)} not predicted; "
                       "run kanseg predict again on the inputs not predicted")


def _predict_one(predictor, scan, out_dir: Path, index: int, total: int, outcomes: list, taken: set,
                 on_outcome, **options: Any) -> None:
    """Predict one input of a batch; its outcome (outputs or one-line error) is appended to ``outcomes``."""
    outcome = PredictionOutcome(scan.path)
    start = time.perf_counter()
    try:
        if scan.relative in taken:
            raise KansegError(f"{scan.path}: another input already wrote outputs named {scan.relative}")
        taken.add(scan.relative)
        outcome.outputs = predict_scan(
            predictor,
            scan.files,
            out_dir / scan.relative,
            save_probabilities=options["save_probabilities"],
            overlay=options["overlay"],
            progress=options["progress"] and predictor.spatial_dims == 3,
        )
    except KansegError as err:
        outcome.error = _one_line(scan.path, str(err))
    except (RuntimeError, MemoryError, OSError) as err:  # e.g. out of memory on a huge scan
        outcome.error = _one_line(scan.path, f"{type(err).__name__}: {err}")
    outcome.seconds = time.perf_counter() - start
    outcomes.append(outcome)
    if on_outcome is not None:
        on_outcome(index, total, outcome)
