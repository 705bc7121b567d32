"""Reading new scans (channel matching, corrupt files, NIfTI header checks) and atomic writers."""

import os

import cv2
import nibabel as nib
import numpy as np
import pytest

from kanseg.errors import KansegError
from kanseg.inference import readers
from kanseg.inference.writers import write_nifti, write_png


def nifti(shape=(9, 10, 11), dtype=np.int16, seed=0) -> nib.Nifti1Image:
    """A NIfTI with non-trivial affine, qform/sform codes, units and description."""
    data = np.random.default_rng(seed).integers(0, 200, size=shape).astype(dtype)
    affine = np.array([[0.8, 0, 0, -10], [0, 0.9, 0.1, 20], [0, -0.1, 2.5, 5], [0, 0, 0, 1]])
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = b"kanseg test volume"
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=2)
    return image


def test_read_image_corrupt(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((40, 40, 3), 128, np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:30])  # truncated inside the header
    with pytest.raises(KansegError, match="bad.png"):
        readers.read_image(bad)


def test_collect_inputs_folders_and_files(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for name in ["a/1.png", "a/sub/2.nii.gz", "a/notes.txt", "b.bmp"]:
        (tmp_path / name).write_bytes(b"x")
    scans = readers.collect_inputs([tmp_path / "a", tmp_path / "b.bmp"])
    assert [(s.path.name, str(s.relative)) for s in scans] == [("1.png", "1"), ("2.nii.gz", "sub/2"), ("b.bmp", "b")]
    with pytest.raises(KansegError, match="input not found"):
        readers.collect_inputs([tmp_path / "missing.png"])


def test_read_volume_values_and_channels(tmp_path):
    image = nifti()
    image.header.set_slope_inter(0.5, 3.0)
    nib.save(image, tmp_path / "v.nii.gz")
    data, loaded = readers.read_volume(tmp_path / "v.nii.gz", in_channels=1)
    assert data.shape == (9, 10, 11, 1) and data.dtype == np.float32
    np.testing.assert_allclose(data[..., 0], np.asanyarray(image.dataobj) * 0.5 + 3.0)
    np.testing.assert_array_equal(loaded.affine, image.affine)
    with pytest.raises(KansegError, match=r"volume has 1 channels \(4th axis\) but the model expects 2"):
        readers.read_volume(tmp_path / "v.nii.gz", in_channels=2)


def test_read_volume_absurd_header(tmp_path):
    path = tmp_path / "huge.nii"
    nib.save(nifti(), path)
    raw = bytearray(path.read_bytes())
    dims = np.array([3, 30000, 30000, 30000, 1, 1, 1, 1], dtype="<i2")  # dim[] lives at byte 40
    raw[40:56] = dims.tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(KansegError, match=r"huge.nii: header claims 30000x30000x30000"):
        readers.read_volume(path, in_channels=1)


def test_read_volume_truncated(tmp_path):
    path = tmp_path / "cut.nii"
    nib.save(nifti(), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(KansegError, match="cut.nii: truncated NIfTI"):
        readers.read_volume(path, in_channels=1)
    gz = tmp_path / "cut.nii.gz"
    nib.save(nifti(shape=(30, 30, 30)), gz)
    gz.write_bytes(gz.read_bytes()[:-200])
    with pytest.raises(KansegError, match="cut.nii.gz: cannot read voxel data"):
        readers.read_volume(gz, in_channels=1)


def test_read_volume_not_nifti(tmp_path):
    path = tmp_path / "text.nii"
    path.write_text("not a volume")
    with pytest.raises(KansegError, match="text.nii: cannot read NIfTI header"):
        readers.read_volume(path, in_channels=1)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_write_nifti_round_trip_keeps_geometry_and_header(tmp_path, suffix):
    reference = nifti(shape=(9, 10, 11, 2))
    mask = (np.random.default_rng(1).random((9, 10, 11)) > 0.5).astype(np.uint8)
    path = write_nifti(tmp_path / f"m{suffix}", mask, reference)
    out = nib.load(path)
    assert out.shape == (9, 10, 11) and out.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), mask)
    np.testing.assert_allclose(out.affine, reference.affine)
    for key in ["qform_code", "sform_code", "xyzt_units", "descrip", "quatern_b", "quatern_c", "srow_x", "srow_z"]:
        np.testing.assert_array_equal(out.header[key], reference.header[key], err_msg=key)
    np.testing.assert_allclose(out.header["pixdim"][1:4], reference.header["pixdim"][1:4])
    assert sorted(os.listdir(tmp_path)) == [f"m{suffix}"]  # no temporary file left behind


def test_write_png_atomic_and_rgb_order(tmp_path):
    picture = np.zeros((4, 5, 3), np.uint8)
    picture[..., 0] = 255  # red in RGB
    write_png(tmp_path / "o.png", picture)
    back = cv2.imread(str(tmp_path / "o.png"))
    assert back.shape == (4, 5, 3) and (back[..., 2] == 255).all() and (back[..., 0] == 0).all()
    assert os.listdir(tmp_path) == ["o.png"]


def test_enlarge_and_comparison():
    from kanseg.inference import overlays

    small = np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)
    big = overlays.enlarge(small)  # smallest whole factor with both sides >= 256: ceil(256 / 48) = 6
    assert big.shape == (288, 384) and np.array_equal(big[::6, ::6], small)
    assert overlays.enlarge(np.zeros((300, 260), np.uint8)).shape == (300, 260)
    mask = small > 100
    picture = overlays.comparison(np.stack([small] * 3, -1), mask, ~mask)
    assert picture.shape == (288, 2 * 384 + 4, 3) and picture.dtype == np.uint8
