"""Sliding-window inference with optional flip test-time augmentation (TTA).

Memory is bounded by the window: MONAI's ``sliding_window_inference`` keeps only the input, the
stitched output and its weight map at full size; everything else (TTA included) happens per window.
TTA runs inside the window predictor, so it costs compute, never memory: each window is predicted
for every combination of flipped spatial axes (2D: 4 passes, 3D: 8 passes, nnU-Net's "mirroring"),
flipped back and averaged. When one window covers the image this is exactly whole-image flip TTA.

Windows are blended as logits and the activation is applied once to the stitched map. Evaluation
(:func:`kanseg.engine.evaluate.predict_logits`) blends through the same :func:`sliding_window_logits`, so
``kanseg predict`` and ``kanseg evaluate`` agree on the same image.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import nn

BLEND_MODES = ("gaussian", "constant")
DEFAULT_BLEND = "gaussian"
DEFAULT_OVERLAP = 0.5
DEFAULT_SW_BATCH_SIZE = 4


def flip_combinations(spatial_dims: int) -> list[tuple[int, ...]]:
    """Tensor axes to flip for each TTA pass, identity first: 2D -> [(), (2,), (3,), (2, 3)]."""
    axes = range(2, 2 + spatial_dims)
    return [combo for r in range(spatial_dims + 1) for combo in itertools.combinations(axes, r)]


class WindowPredictor(nn.Module):
    """Model wrapper for one batch of windows: (B, C_in, *roi) -> logits (B, C_out, *roi) float32.

    Takes the final output when a model returns a list (deep supervision) and, with ``tta=True``,
    averages the logits over all flip combinations.
    """

    def __init__(self, model: nn.Module, spatial_dims: int, tta: bool = False):
        super().__init__()
        self.model = model
        self.flips = flip_combinations(spatial_dims) if tta else [()]

    def _forward_once(self, windows: torch.Tensor) -> torch.Tensor:
        out = self.model(windows)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.float()

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        total = None
        for axes in self.flips:
            flipped = torch.flip(windows, axes) if axes else windows
            logits = self._forward_once(flipped)
            logits = torch.flip(logits, axes) if axes else logits
            total = logits if total is None else total.add_(logits)
        return total.div_(len(self.flips))


def sliding_window_logits(
    images: torch.Tensor,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    roi_size: Sequence[int],
    *,
    overlap: float = DEFAULT_OVERLAP,
    sw_batch_size: int = DEFAULT_SW_BATCH_SIZE,
    blend: str = DEFAULT_BLEND,
    sw_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Blended logits of windows of ``roi_size`` over ``images``: the one sliding-window call of kanseg
    (evaluation and prediction both come here).

    Args:
        images: (B, C_in, *spatial) float32.
        predictor: windows (N, C_in, *roi) -> logits (N, C_out, *roi), e.g. a :class:`WindowPredictor`.
        roi_size: window size, one entry per spatial dimension (``-1``: the image's size); images smaller than
            the window are padded.
        overlap: fraction of overlap between neighbouring windows, in [0, 1).
        sw_batch_size: windows per forward pass.
        blend: ``"gaussian"`` (down-weights window borders) or ``"constant"``.
        sw_device: where windows are predicted (default: the images' device).
        device: where the stitched map is kept (default: the images' device).

    Returns:
        (B, C_out, *spatial) logits, float32 when ``images`` is.
    """
    if blend not in BLEND_MODES:
        raise ValueError(f"unknown blend mode {blend!r}; valid: {', '.join(BLEND_MODES)}")
    roi = tuple(int(r) for r in roi_size)
    return sliding_window_inference(images, roi, sw_batch_size, predictor, overlap=overlap, mode=blend,
                                    sw_device=sw_device, device=device, progress=progress)


@torch.inference_mode()
def sliding_window_probabilities(
    image: torch.Tensor,
    predictor: WindowPredictor,
    roi_size: Sequence[int],
    *,
    overlap: float = DEFAULT_OVERLAP,
    sw_batch_size: int = DEFAULT_SW_BATCH_SIZE,
    blend: str = DEFAULT_BLEND,
    sw_device: torch.device | str = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Stitched probabilities for one image (:func:`sliding_window_logits`, then the activation).

    Args:
        image: (C_in, *spatial) float32, preprocessed, on the CPU (it stays there; windows are moved to
            ``sw_device`` one batch at a time).
        predictor: the window predictor (model + TTA), already on ``sw_device``.
        roi_size, overlap, sw_batch_size, blend: see :func:`sliding_window_logits`.

    Returns:
        (C_out, *spatial) float32 probabilities on the CPU (sigmoid for one channel, softmax otherwise).
    """
    out = sliding_window_logits(image[None], predictor, roi_size, overlap=overlap, sw_batch_size=sw_batch_size,
                                blend=blend, sw_device=sw_device, device="cpu", progress=progress)
    return out[0].sigmoid_() if out.shape[1] == 1 else torch.softmax(out[0], dim=0)
