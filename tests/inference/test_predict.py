"""`kanseg.inference.predict` and `kanseg predict` on real files: PNG, NIfTI, bad inputs, folders."""

import os
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch

from kanseg.checkpoint import build_model, load_checkpoint, save_checkpoint
from kanseg.cli.predict import parse_roi
from kanseg.data import preprocess_image
from kanseg.errors import KansegError
from kanseg.inference import Predictor, predict
from kanseg.models import create_model

from .conftest import assert_mask_on_input_grid, make_checkpoint, small_model_kwargs

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def write_rgb(path, height, width, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(path), pixels)
    return path


def write_volume(path, shape=(21, 18, 15), seed=0):
    data = np.random.default_rng(seed).normal(100, 20, size=shape).astype(np.int16)
    affine = np.array([[0.7, 0, 0, -30], [0, 0.8, 0, 12], [0, 0, 3.0, -7], [0, 0, 0, 1]])
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=4)
    nib.save(image, path)
    return path


def test_odd_sized_image_gives_a_mask_of_the_same_size(tmp_path, checkpoint_2d):
    write_rgb(tmp_path / "odd.png", 61, 47)
    cv2.imwrite(str(tmp_path / "grey.bmp"), np.full((33, 70), 90, np.uint8))
    report = predict(checkpoint_2d, [tmp_path / "odd.png", tmp_path / "grey.bmp"], tmp_path / "out",
                     save_probabilities=True, overlay=True)
    assert report.ok, report.failures
    mask = cv2.imread(str(tmp_path / "out" / "odd_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (61, 47) and set(np.unique(mask)) <= {0, 255}
    prob = cv2.imread(str(tmp_path / "out" / "odd_prob.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask == 255, prob >= 128)  # threshold 0.5 <-> 127.5 after x255
    assert cv2.imread(str(tmp_path / "out" / "odd_overlay.png")).shape == (61, 47, 3)
    assert cv2.imread(str(tmp_path / "out" / "grey_mask.png"), cv2.IMREAD_UNCHANGED).shape == (33, 70)


def test_predictor_matches_preprocess_model_resize(tmp_path, checkpoint_2d):
    """The pipeline is exactly: the dataset's preprocessing -> model -> sigmoid -> bilinear resize back."""
    image = cv2.cvtColor(cv2.imread(str(write_rgb(tmp_path / "a.png", 45, 39, seed=3))), cv2.COLOR_BGR2RGB)
    ckpt = load_checkpoint(checkpoint_2d)
    model = build_model(ckpt)
    with torch.no_grad():
        logits = model(preprocess_image(image, ckpt["preprocessing"])[None])  # 32x32
        want = torch.nn.functional.interpolate(torch.sigmoid(logits), size=(45, 39), mode="bilinear")[0]
    got = Predictor.from_checkpoint(checkpoint_2d).predict_array(image)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_nifti_mask_keeps_affine_shape_and_header(tmp_path, checkpoint_3d):
    source = write_volume(tmp_path / "case_7.nii.gz")
    report = predict(checkpoint_3d, source, tmp_path / "out", roi_size=(16, 16, 16), overlap=0.25, tta=True,
                     save_probabilities=True, overlay=True)
    assert report.ok, report.failures
    ref, mask = assert_mask_on_input_grid(tmp_path / "out" / "case_7_mask.nii.gz", source)
    values = np.asanyarray(mask.dataobj)
    assert set(np.unique(values)) <= {0, 1}
    prob = np.asanyarray(nib.load(tmp_path / "out" / "case_7_prob.nii.gz").dataobj)
    assert prob.dtype == np.float32 and prob.min() >= 0 and prob.max() <= 1
    np.testing.assert_array_equal(values == 1, prob >= 0.5)
    overlay = cv2.imread(str(tmp_path / "out" / "case_7_overlay.png"))
    # mid-slices (Z, Y), (Z, X), (Y, X) side by side, stretched to the 0.7 x 0.8 x 3.0 mm voxels and
    # enlarged to 256 rows: Z spans 15 * 3.0 / 0.7 = 64.3 units -> zoom 3.98; widths 82 + 84 + 84
    assert overlay.shape == (256, 250, 3)


def test_folder_with_one_corrupt_file_continues(tmp_path, checkpoint_2d, run_cli):
    folder = tmp_path / "scans"
    (folder / "more").mkdir(parents=True)
    write_rgb(folder / "a.png", 40, 52)
    write_rgb(folder / "more" / "b.jpg", 29, 31)
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, output = run_cli("--checkpoint", checkpoint_2d, folder, "--out", tmp_path / "out")
    assert code == 2
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "c.png" in errors[0] and "corrupt" in errors[0]
    assert "Traceback" not in output and "2 of 3 inputs predicted, 1 failed" in output
    assert cv2.imread(str(tmp_path / "out" / "more" / "b_mask.png"), cv2.IMREAD_UNCHANGED).shape == (29, 31)
    assert cv2.imread(str(tmp_path / "out" / "a_mask.png"), cv2.IMREAD_UNCHANGED).shape == (40, 52)
    assert not (tmp_path / "out" / "c_mask.png").exists()
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary files left


def test_default_window_is_the_training_patch_size(tmp_path):
    path = make_checkpoint(tmp_path / "p.pt", 3, 1, {"image_size": None, "intensity": {"kind": "zscore"}})
    assert Predictor.from_checkpoint(path).roi_size == (128, 128, 128)  # nothing stored: DEFAULT_ROI_3D
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "config": {"data": {"patch_size": [24, 20, 16]}}}, path)
    assert Predictor.from_checkpoint(path).roi_size == (24, 20, 16)
    assert Predictor.from_checkpoint(path, roi_size=8).roi_size == (8, 8, 8)


def test_wrong_kind_of_input_for_the_checkpoint(tmp_path, checkpoint_2d, checkpoint_3d):
    png, volume = write_rgb(tmp_path / "x.png", 20, 20), write_volume(tmp_path / "v.nii")
    report = predict(checkpoint_2d, [png, volume], tmp_path / "o2")
    assert [o.error for o in report.outcomes][0] is None
    assert report.failures[0].error == f"{volume}: a 3D NIfTI volume, but the checkpoint holds a 2D model"
    report = predict(checkpoint_3d, [png], tmp_path / "o3")
    assert report.failures[0].error == f"{png}: a 2D image, but the checkpoint holds a 3D model"


def test_wrong_channel_count(tmp_path, checkpoint_3d, run_cli):
    data = np.zeros((8, 8, 8, 2), np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "two.nii.gz")
    code, output = run_cli("-c", checkpoint_3d, tmp_path / "two.nii.gz", "-o", tmp_path / "out")
    assert code == 2
    assert "two.nii.gz: volume has 2 channels (4th axis) but the model expects 1" in output
    two_channel_2d = make_checkpoint(tmp_path / "c2.pt", 2, 2, {"image_size": None, "intensity": {"kind": "zscore"}})
    code, output = run_cli("-c", two_channel_2d, write_rgb(tmp_path / "rgb.png", 8, 8), "-o", tmp_path / "out")
    assert code == 2 and f"error: {tmp_path / 'rgb.png'}: image has 3 channels, the model expects 2" in output


def test_cli_options_and_plain_log(tmp_path, checkpoint_2d, run_cli):
    image = write_rgb(tmp_path / "img.tif", 50, 41)
    code, output = run_cli("--checkpoint", checkpoint_2d, image, "--roi", "24", "24", "--overlap", "0.25",
                     "--tta", "--overlay", "--blend", "constant", "--out", tmp_path / "out")
    assert code == 0, output
    assert f"[1/1] {image} -> {tmp_path / 'out' / 'img_mask.png'}" in output
    assert "1 of 1 inputs predicted, 0 failed" in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_mask.png", "img_overlay.png"]


@pytest.mark.parametrize(
    "args, message",
    [(["--roi", "24", "24", "24"], "roi size (24, 24, 24) does not fit a 2D model (need 2 positive sizes)"),
     (["--overlap", "1.5"], "overlap must be in [0, 1), got 1.5"),
     (["--blend", "cubic"], "unknown blend mode 'cubic'; valid: gaussian, constant"),
     (["--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N")],
)
def test_cli_bad_options_are_one_line(tmp_path, checkpoint_2d, run_cli, args, message):
    image = write_rgb(tmp_path / "img.png", 20, 20)
    code, output = run_cli("-c", checkpoint_2d, image, "-o", tmp_path / "out", *args)
    assert code == 2 and output.strip() == f"error: {message}"


def test_missing_checkpoint_and_input(tmp_path, checkpoint_2d, run_cli):
    code, output = run_cli("-c", tmp_path / "none.pt", "x.png", "-o", tmp_path)
    assert code == 2 and "checkpoint not found" in output
    code, output = run_cli("-c", checkpoint_2d, tmp_path / "missing.png", "-o", tmp_path)
    assert code == 2 and "input not found" in output


def test_checkpoint_without_preprocessing(tmp_path, run_cli):
    kwargs = small_model_kwargs(2, 3)
    path = save_checkpoint(tmp_path / "bare.pt", model_name="unet-conv", model_kwargs=kwargs,
                           state_dict=create_model("unet-conv", **kwargs).state_dict())
    code, output = run_cli("-c", path, write_rgb(tmp_path / "a.png", 9, 9), "-o", tmp_path / "out")
    assert code == 2 and output.strip() == (
        "error: checkpoint preprocessing lacks intensity: not a checkpoint of a kanseg dataset")


def test_parse_roi():
    assert parse_roi(None, ["a.png"]) == (None, ["a.png"])
    assert parse_roi("96x96x64", ["a.nii"]) == ((96, 96, 64), ["a.nii"])
    assert parse_roi("256", ["256", "a.png"]) == ((256, 256), ["a.png"])
    assert parse_roi("64", ["a.nii"]) == (64, ["a.nii"])  # one size: every axis
    with pytest.raises(KansegError, match="--roi expects positive sizes"):
        parse_roi("0,5", [])


def test_real_nifti_from_nibabel(tmp_path, checkpoint_3d):
    """Smoke test on a real scan shipped with nibabel (anatomical.nii, 33x41x25 big-endian int16)."""
    source = NIBABEL_DATA / "anatomical.nii"
    if not source.is_file():
        pytest.skip("nibabel's test data is not installed")
    report = predict(checkpoint_3d, source, tmp_path, roi_size=24, overlap=0.0, overlay=True)
    assert report.ok, report.failures
    ref, mask = nib.load(source), nib.load(tmp_path / "anatomical_mask.nii")
    assert mask.shape == ref.shape
    np.testing.assert_array_equal(mask.affine, ref.affine)
    assert os.path.getsize(tmp_path / "anatomical_overlay.png") > 0


@pytest.mark.shared_data
def test_real_cvc_frame(tmp_path, checkpoint_2d, shared_dir):
    """A real colonoscopy frame (CVC-ClinicDB PNG release, 384x288 RGB) -> mask of its native size."""
    frame = shared_dir / "data" / "CVC-ClinicDB" / "Original" / "1.png"
    if not frame.is_file():
        pytest.skip("CVC-ClinicDB is not in ../shared/data")
    report = predict(checkpoint_2d, frame, tmp_path, overlay=True)
    assert report.ok, report.failures
    assert cv2.imread(str(tmp_path / "1_mask.png"), cv2.IMREAD_UNCHANGED).shape == (288, 384)
    assert cv2.imread(str(tmp_path / "1_overlay.png")).shape == (288, 384, 3)


def test_top_level_api_is_the_inference_predict():
    import kanseg

    assert kanseg.predict is predict
