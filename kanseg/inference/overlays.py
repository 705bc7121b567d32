"""Overlay pictures for a quick look at predictions: each class filled in its colour, contours drawn."""

from __future__ import annotations

import cv2
import numpy as np

OVERLAY_COLOUR = (255, 64, 0)  # RGB, class 1 (the binary foreground)
OVERLAY_ALPHA = 0.35
# One colour per class index 1, 2, ... (cycled past the end): well apart in hue, class 1 = binary colour.
PALETTE = (OVERLAY_COLOUR, (0, 160, 255), (255, 220, 0), (0, 210, 90), (200, 0, 255), (255, 0, 140),
           (0, 235, 235), (140, 90, 40))


def class_colour(index: int) -> tuple[int, int, int]:
    """RGB colour of class ``index`` (>= 1) in overlays."""
    return PALETTE[(int(index) - 1) % len(PALETTE)]


def to_display_uint8(image: np.ndarray) -> np.ndarray:
    """Any-range ``(H, W[, C])`` array -> uint8 RGB ``(H, W, 3)``; floats use a 1-99 percentile window."""
    if image.ndim == 3 and image.shape[-1] not in (1, 3):
        image = image[..., 0]  # multi-channel volumes: show the first channel
    if image.dtype != np.uint8:
        low, high = np.percentile(image, (1, 99)) if image.size else (0.0, 1.0)
        scale = 255.0 / (high - low) if high > low else 0.0
        image = np.clip((image.astype(np.float32) - low) * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2 or image.shape[-1] == 1:
        image = np.repeat(image.reshape(image.shape[:2] + (1,)), 3, axis=-1)
    return np.ascontiguousarray(image)


def overlay_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend ``mask`` (H, W) onto ``image`` (H, W[, C]); returns RGB uint8 (H, W, 3).

    ``mask`` holds class indices (binary: 0/1): each non-zero class is filled with
    :func:`class_colour` and outlined in it (all fills first, so no outline is blended over).
    """
    picture = to_display_uint8(image)
    classes = [int(k) for k in np.unique(mask) if k > 0]
    for k in classes:
        region = mask == k
        colour = np.array(class_colour(k), dtype=np.float32)
        picture[region] = ((1 - OVERLAY_ALPHA) * picture[region] + OVERLAY_ALPHA * colour).astype(np.uint8)
    for k in classes:
        contours, _ = cv2.findContours((mask == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(picture, contours, -1, class_colour(k), thickness=1)
    return picture


def mid_slices(volume: np.ndarray) -> list[np.ndarray]:
    """The three orthogonal mid-slices of ``volume`` (X, Y, Z[, C]) as display-oriented 2D copies.

    Each slice is transposed and flipped vertically so its second voxel axis points up, the usual
    look for RAS-like data. Taking the slices early lets a caller free the volume before inference.
    """
    slices = []
    for axis in range(3):
        plane = np.take(volume, volume.shape[axis] // 2, axis=axis)
        slices.append(np.ascontiguousarray(np.flipud(np.swapaxes(plane, 0, 1))))
    return slices


def mid_slice_overlay(image_slices: list[np.ndarray], mask_slices: list[np.ndarray],
                      spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), min_height: int = 256) -> np.ndarray:
    """Overlays of matching slices (from :func:`mid_slices`) side by side: RGB uint8 (H, W_total, 3).

    Panels are stretched to the voxel ``spacing`` (X, Y, Z) so anatomy keeps its proportions, and
    small volumes are enlarged (nearest neighbour) to at least ``min_height`` rows.
    """
    unit = min(spacing)
    sizes = []
    for axis, image in enumerate(image_slices):
        cols_axis, rows_axis = [d for d in range(3) if d != axis]
        sizes.append((image.shape[1] * spacing[cols_axis] / unit, image.shape[0] * spacing[rows_axis] / unit))
    zoom = max(1.0, min_height / max(rows for _, rows in sizes))
    panels = []
    for image, mask, (cols, rows) in zip(image_slices, mask_slices, sizes):
        panel = overlay_mask(image, mask)
        target = (max(1, round(cols * zoom)), max(1, round(rows * zoom)))
        panels.append(cv2.resize(panel, target, interpolation=cv2.INTER_NEAREST))
    height = max(p.shape[0] for p in panels)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in panels]
    return np.concatenate(padded, axis=1)


def enlarge(picture: np.ndarray, min_size: int = 256) -> np.ndarray:
    """Scale ``picture`` (H, W[, C]) up by the smallest whole factor that makes both sides at least ``min_size``
    (nearest neighbour: every pixel stays a sharp square); larger pictures are returned as they are."""
    factor = max(1, -(-min_size // min(picture.shape[:2])))
    if factor == 1:
        return picture
    return cv2.resize(picture, (picture.shape[1] * factor, picture.shape[0] * factor), interpolation=cv2.INTER_NEAREST)


def comparison(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, min_size: int = 256,
               titles: tuple[str, str] = ("ground truth", "prediction")) -> np.ndarray:
    """Ground truth | prediction, each overlaid on the 2D ``image``, enlarged with :func:`enlarge`, titled
    in their top-left corners and side by side (4-pixel white gap): RGB uint8."""
    panels = [enlarge(overlay_mask(image, mask), min_size) for mask in (truth, prediction)]
    for panel, title in zip(panels, titles):
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # white on a black outline
            cv2.putText(panel, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thickness, cv2.LINE_AA)
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1]], axis=1)
