"""Export a trained checkpoint as ONNX, TorchScript or safetensors, checked against the eager model.

    >>> result = export_checkpoint("runs/busi/best.pt", "onnx", "exported/")
    >>> result.max_abs_diff          # onnxruntime vs eager PyTorch, random inputs at two sizes

Each format writes its model file and a ``config.json`` (model name and arguments, preprocessing, kanseg version,
what was exported and checked) into the output folder:

- ``onnx``: ``model.onnx``, input ``image (B, C, *S)``, output ``logits (B, K, *S)``; batch and spatial axes are
  dynamic (the templates pad to a multiple of their size divisor inside the graph). Run by onnxruntime and
  compared with the eager model at two input sizes (when onnxruntime is installed: ``pip install kanseg[export]``).
  InstanceNorm and GroupNorm are exported with float64 statistics (:func:`onnx_ready`).
- ``torchscript``: ``model.torchscript.pt`` from ``torch.jit.trace`` (the layers' kernel dispatch is Python, which
  ``torch.jit.script`` cannot compile). Tracing records the ops of one call; the templates trace their padding
  from the input's sizes, so the traced module is checked at a second, odd size too.
- ``safetensors``: ``model.safetensors`` + ``config.json``, loaded back by :func:`kanseg.models.from_pretrained`
  (weights bit-equal, outputs equal).

Graphs are traced on the eager path (``KANSEG_KERNELS=eager``: no Triton, no custom autograd), in eval mode
without gradients. Files are written into a temporary folder inside the output folder (``.export-*``), checked
there, then moved into place with ``os.replace``: a failed export leaves the output folder as it was.

This module imports torch only when it exports, so the CLI can reject bad arguments at once.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kanseg.errors import KansegError

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMATS = ("onnx", "torchscript", "safetensors")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "safetensors": "model.safetensors"}
CONFIG_NAME = "config.json"
INPUT_NAME, OUTPUT_NAME = "image", "logits"
OPSET = 17
#: largest accepted |exported - eager| on the check inputs (float32 logits).
TOLERANCE = 1e-4


class ExportError(KansegError):
    """A model that cannot be exported in the asked format, or whose export does not match it; one line."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote and measured.

    ``max_abs_diff``: the largest ``|exported - eager|`` over the check inputs (``None``: not checked, with the
    reason in ``note``); ``input_shapes``: the shapes of those inputs.
    """

    format: str
    files: list[Path]
    max_abs_diff: float | None
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    note: str = ""


# --- arguments (no torch import) -----------------------------------------------------------------------------------
def check_request(checkpoint: str | os.PathLike, fmt: str, out_dir: str | os.PathLike) -> tuple[Path, str, Path]:
    """Validate an export request before anything is loaded: ``(checkpoint file, format, output folder)``.

    ``checkpoint`` may be a run directory (its ``best.pt``).
    """
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise KansegError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise KansegError(f"--out must be a folder, but {out_dir} is a file")
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir() and (checkpoint / "best.pt").is_file():
        checkpoint = checkpoint / "best.pt"
    if not checkpoint.is_file():
        raise KansegError(f"checkpoint not found: {checkpoint}")
    return checkpoint, fmt, out_dir


# --- eager, traceable model -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def eager_export_mode() -> Iterator[None]:
    """``KANSEG_KERNELS=eager`` (the reference layers, no fused kernels), no gradients, tracer warnings silenced
    (the templates' shape checks are Python comparisons the trace does not need)."""
    import torch

    previous = os.environ.get("KANSEG_KERNELS")
    os.environ["KANSEG_KERNELS"] = "eager"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*(ONNX|onnx|instance_norm|InstanceNorm).*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*", category=FutureWarning)
            yield
    finally:
        if previous is None:
            os.environ.pop("KANSEG_KERNELS", None)
        else:
            os.environ["KANSEG_KERNELS"] = previous


def check_inputs(model: nn.Module, spatial_dims: int, in_channels: int, seed: int = 0) -> list[torch.Tensor]:
    """Two random inputs: ``(1, C, 2d, ...)`` and ``(2, C, d+3, d+5, d+7)`` with ``d`` the model's size divisor
    (the second one odd-sized, so the padding inside the graph is exercised)."""
    import torch

    d = int(getattr(model, "size_divisor", 16))
    generator = torch.Generator().manual_seed(seed)
    first = (1, in_channels, *[2 * d] * spatial_dims)
    second = (2, in_channels, *[d + 3 + 2 * i for i in range(spatial_dims)])
    return [torch.randn(shape, generator=generator) for shape in (first, second)]


def onnx_ready(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose InstanceNorms (those without running statistics) and GroupNorms are
    :class:`~kanseg.models.parts.Float64StatsNorm`: the same function, exported as reductions in float64.

    onnxruntime's InstanceNormalization (which GroupNorm also exports to) sums float32 without compensation: on a
    zero-padded 32^3 input the first norm of a Gram U-Net was off by 3e-4 from PyTorch, which sums accurately.
    With float64 statistics the difference is ~1e-6. (ONNX's op would also need the channel count, which the
    exporter loses after a concatenation: FastKAN's input norm in a decoder block.)
    """
    from torch import nn

    from kanseg.models.parts import Float64StatsNorm

    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        swap = None
        if isinstance(module, nn.modules.instancenorm._InstanceNorm) and not module.track_running_stats:
            swap = Float64StatsNorm(module.num_features, module.num_features, module.eps, module.weight, module.bias)
        elif isinstance(module, nn.GroupNorm):
            swap = Float64StatsNorm(module.num_groups, module.num_channels, module.eps, module.weight, module.bias)
        if swap is not None:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, swap)
    return model


def _max_abs_diff(run: Callable[[torch.Tensor], Any], model: nn.Module, inputs: list[torch.Tensor],
                  what: str) -> float:
    """Max ``|run(x) - model(x)|`` over ``inputs``; :class:`ExportError` above the accepted difference.

    Accepted: :data:`TOLERANCE`, or, when the eager float32 model is itself less accurate than that (deep stacks of
    norms without activations, e.g. Chebyshev KANs at random initialisation), 4x its own error against float64.
    """
    import torch

    worst = 0.0
    with eager_export_mode():
        for x in inputs:
            expected = model(x)
            try:
                got = torch.as_tensor(run(x))
            except Exception as err:  # noqa: BLE001 (onnxruntime and TorchScript raise their own types)
                raise ExportError(f"the exported {what} fails on input {_shape(x)}: {_first_line(err)}") from None
            if tuple(got.shape) != tuple(expected.shape):
                raise ExportError(f"the exported {what} gives shape {_shape(got)} for input {_shape(x)}, "
                                  f"the model {_shape(expected)}")
            worst = max(worst, float((got - expected).abs().max()))
        if worst <= TOLERANCE:
            return worst
        model64 = copy.deepcopy(model).double()
        floor = max(float((model(x).double() - model64(x.double())).abs().max()) for x in inputs)
    allowed = max(TOLERANCE, 4 * floor)
    if not worst <= allowed:
        raise ExportError(f"the exported {what} differs from the model by {worst:.3g}, more than {allowed:.3g} "
                          f"(the larger of {TOLERANCE:g} and 4x the model's own float32 error, {floor:.3g})")
    return worst


# --- formats --------------------------------------------------------------------------------------------------------
def export_onnx(model: nn.Module, path: str | os.PathLike, example: torch.Tensor, opset: int = OPSET,
                name: str | None = None) -> Path:
    """Write ``model`` (called ``name`` in messages) as ONNX to ``path``, batch and spatial axes dynamic;
    :class:`ExportError` says why it cannot be."""
    import torch

    axes = {0: "batch", **{2 + i: f"size{i}" for i in range(example.dim() - 2)}}
    try:
        import onnx  # noqa: F401  (the exporter serialises through it)
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'kanseg[export]'") from None
    with eager_export_mode():
        try:
            torch.onnx.export(onnx_ready(model).eval(), (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
        except Exception as err:  # noqa: BLE001 (the exporters raise many types; all mean "cannot")
            raise ExportError(f"{_model_name(model, name)} cannot be exported to ONNX: {_first_line(err)}") from None
    return Path(path)


def check_onnx(path: str | os.PathLike, model: nn.Module, inputs: list[torch.Tensor]) -> float | None:
    """Max ``|onnxruntime - eager|`` over ``inputs`` (``None`` when onnxruntime is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _max_abs_diff(lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0], model, inputs,
                         "ONNX graph")


def export_torchscript(model: nn.Module, path: str | os.PathLike, example: torch.Tensor,
                       name: str | None = None) -> Path:
    """Write ``torch.jit.trace(model)`` to ``path``; :class:`ExportError` says why it cannot be."""
    import torch

    with eager_export_mode():
        try:
            traced = torch.jit.trace(model.eval(), (example,), check_trace=False)
        except Exception as err:  # noqa: BLE001 (the exporters raise many types; all mean "cannot")
            raise ExportError(f"{_model_name(model, name)} cannot be traced to TorchScript: "
                              f"{_first_line(err)}") from None
        torch.jit.save(traced, str(path))
    return Path(path)


def check_torchscript(path: str | os.PathLike, model: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Max ``|loaded TorchScript - eager|`` over ``inputs``."""
    import torch

    with eager_export_mode():
        loaded = torch.jit.load(str(path), map_location="cpu").eval()
    return _max_abs_diff(loaded, model, inputs, "TorchScript module")


def check_safetensors(folder: str | os.PathLike, model: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Load the folder with :func:`~kanseg.models.from_pretrained`: weights must be bit-equal; returns the max
    output difference (0 when the model is deterministic)."""
    import torch

    from kanseg.models.pretrained import from_pretrained

    loaded = from_pretrained(folder)
    own, back = model.state_dict(), loaded.state_dict()
    unequal = [k for k in own if k not in back or not torch.equal(own[k], back[k])] + sorted(set(back) - set(own))
    if unequal:
        raise ExportError(f"safetensors weights do not load back equal: {unequal[:3]}")
    return _max_abs_diff(loaded, model, inputs, "safetensors model")


# --- a checkpoint, end to end ---------------------------------------------------------------------------------------
def export_checkpoint(checkpoint: str | os.PathLike, fmt: str, out_dir: str | os.PathLike,
                      opset: int = OPSET) -> ExportResult:
    """Export a kanseg checkpoint in ``fmt`` (:data:`FORMATS`) into ``out_dir`` and check it against the eager
    model. One-line :class:`~kanseg.errors.KansegError` for bad input; the output folder is left as it was then."""
    from kanseg.checkpoint import build_model, load_checkpoint
    from kanseg.models.pretrained import pretrained_config, save_pretrained, write_config

    checkpoint, fmt, out_dir = check_request(checkpoint, fmt, out_dir)
    ckpt = load_checkpoint(checkpoint)
    model = build_model(ckpt, checkpoint)
    name, kwargs = ckpt["model"]["name"], ckpt["model"]["kwargs"]
    spatial_dims = int(getattr(model, "spatial_dims", kwargs.get("spatial_dims", 2)))
    in_channels = int(getattr(model, "in_channels", kwargs.get("in_channels", 1)))
    inputs = check_inputs(model, spatial_dims, in_channels)
    preprocessing = ckpt.get("preprocessing") or {}
    model_file = MODEL_FILES[fmt]
    export_info: dict[str, Any] = {"format": fmt, "file": model_file, "checkpoint": checkpoint.name,
                                   "eager_path": True}
    note = ""

    with _staging_folder(out_dir) as stage:
        if fmt == "safetensors":
            save_pretrained(stage, model_name=name, model_kwargs=kwargs, state_dict=model.state_dict(),
                            preprocessing=preprocessing)
            diff = check_safetensors(stage, model, inputs)
        elif fmt == "onnx":
            export_onnx(model, stage / model_file, inputs[0], opset, name)
            diff = check_onnx(stage / model_file, model, inputs)
            export_info.update(opset=opset, input=INPUT_NAME, output=OUTPUT_NAME, dynamic_axes=True)
            if diff is None:
                note = "not checked: onnxruntime is not installed (pip install 'kanseg[export]')"
        else:
            export_torchscript(model, stage / model_file, inputs[0], name)
            diff = check_torchscript(stage / model_file, model, inputs)
            export_info.update(method="torch.jit.trace")
        export_info["check"] = {"max_abs_diff": diff, "tolerance": TOLERANCE,
                                "input_shapes": [list(x.shape) for x in inputs]}
        write_config(stage, pretrained_config(name, kwargs, preprocessing, export=export_info))
        files = _move_into(stage, out_dir)
    return ExportResult(fmt, files, diff, [tuple(x.shape) for x in inputs], note)


@contextlib.contextmanager
def _staging_folder(out_dir: Path) -> Iterator[Path]:
    """A temporary folder inside ``out_dir`` (same file system, so ``os.replace`` is atomic), always removed;
    ``out_dir`` itself is removed again if it was created here and nothing was moved into it."""
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()


def _move_into(stage: Path, out_dir: Path) -> list[Path]:
    """Move every file of ``stage`` into ``out_dir`` (``os.replace`` each; the model file before config.json)."""
    files = sorted(stage.iterdir(), key=lambda p: p.name == CONFIG_NAME)
    umask = os.umask(0)
    os.umask(umask)
    moved = []
    for path in files:
        os.chmod(path, 0o666 & ~umask)  # temporary files are private; exported ones are ordinary files
        os.replace(path, out_dir / path.name)
        moved.append(out_dir / path.name)
    return moved


def _model_name(model: nn.Module, name: str | None) -> str:
    return f"model {name!r}" if name else f"model {type(model).__name__}"


def _shape(x) -> str:
    return "x".join(map(str, tuple(x.shape)))


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
