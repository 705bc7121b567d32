"""Reading images and masks: every mask encoding of the releases, corrupt files, bad headers."""

from __future__ import annotations

import cv2
import nibabel as nib
import numpy as np
import pytest

from kanseg.data.io import read_image, read_mask, write_image_atomic
from kanseg.data.synthetic import BILEVEL
from kanseg.errors import KansegError

MASK = np.zeros((6, 9), bool)
MASK[1:4, 2:7] = True


def _encodings(mask: np.ndarray) -> dict[str, np.ndarray]:
    grey = mask.astype(np.uint8) * 255
    return {
        "grey": grey,
        "rgb": np.dstack([grey] * 3),
        "rgba_opaque": np.dstack([grey, grey, grey, np.full_like(grey, 255)]),
        "alpha_only": np.dstack([np.zeros_like(grey)] * 3 + [grey]),
    }


@pytest.mark.parametrize("kind", ["grey", "rgb", "rgba_opaque", "alpha_only", "bilevel"])
def test_mask_encodings_read_as_the_same_mask(tmp_path, kind):
    if kind == "bilevel":
        path = write_image_atomic(tmp_path / "m.png", MASK.astype(np.uint8) * 255, BILEVEL)
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ndim == 2
    else:
        path = write_image_atomic(tmp_path / "m.png", _encodings(MASK)[kind])
    np.testing.assert_array_equal(read_mask(path), MASK)


def test_extra_masks_are_or_merged_and_threshold_drops_grey_edges(tmp_path):
    second = np.zeros_like(MASK)
    second[5, 0] = True
    a = write_image_atomic(tmp_path / "a.png", MASK.astype(np.uint8) * 255)
    b = write_image_atomic(tmp_path / "b.png", second.astype(np.uint8) * 90)  # grey edge value
    np.testing.assert_array_equal(read_mask([a, b]), MASK | second)
    np.testing.assert_array_equal(read_mask([a, b], threshold=127), MASK)


def test_image_is_rgb_channel_last(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = write_image_atomic(tmp_path / "x.png", rgb)
    image = read_image(path)
    assert image.shape == (4, 5, 3) and image[0, 0].tolist() == [200, 0, 0]


def test_corrupt_truncated_and_missing_files_are_one_line_errors(tmp_path):
    good = write_image_atomic(tmp_path / "good.png", np.full((32, 32, 3), 7, np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage):
        with pytest.raises(KansegError, match="cannot read image .*" + path.name):
            read_image(path)
    with pytest.raises(KansegError, match="file not found"):
        read_mask(tmp_path / "absent.png")


def test_masks_of_different_sizes_cannot_be_merged(tmp_path):
    a = write_image_atomic(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    b = write_image_atomic(tmp_path / "b.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(KansegError, match="b.png is 5x4"):
        read_mask([a, b])


def test_nifti_read_and_absurd_header(tmp_path):
    volume = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(tmp_path / "v.nii.gz"))
    image = read_image(tmp_path / "v.nii.gz")
    assert image.shape == (2, 3, 4, 1)
    np.testing.assert_array_equal(image[..., 0], volume)
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.float32)
    absurd = tmp_path / "absurd.nii"
    absurd.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(KansegError, match="absurd.nii: header claims 4096x4096x4096"):
        read_image(absurd)
