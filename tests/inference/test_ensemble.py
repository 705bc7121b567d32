"""Ensembles of checkpoints (probabilities averaged) and nnU-Net channel files (<case>_0000, _0001...)."""

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch

from kanseg.errors import KansegError
from kanseg.inference import EnsemblePredictor, Predictor, collect_inputs, predict

from .conftest import RGB_INTENSITY, make_checkpoint


@pytest.fixture(scope="module")
def two_2d(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ens2d")
    pp = {"image_size": [32, 32], "intensity": RGB_INTENSITY}
    return [make_checkpoint(folder / f"fold{k}.pt", 2, 3, pp, seed=k) for k in range(2)]


def test_ensemble_averages_member_probabilities(two_2d):
    image = np.random.default_rng(0).integers(0, 256, (41, 57, 3), dtype=np.uint8)
    members = [Predictor.from_checkpoint(c).predict_array(image) for c in two_2d]
    ensemble = EnsemblePredictor.from_checkpoints(two_2d)
    assert torch.allclose(ensemble.predict_array(image), (members[0] + members[1]) / 2, atol=1e-6)
    assert not torch.allclose(members[0], members[1])  # two different models
    assert ensemble.predict_mask(image).shape == (41, 57)
    single = EnsemblePredictor.from_checkpoints(two_2d[:1]).predict_array(image)
    assert torch.equal(single, members[0])


def test_predict_with_several_checkpoints_writes_the_mean(tmp_path, two_2d):
    image = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image[..., ::-1])
    report = predict(two_2d, tmp_path / "x.png", tmp_path / "out", save_probabilities=True, progress=False)
    assert report.ok
    written = cv2.imread(str(tmp_path / "out" / "x_prob.png"), cv2.IMREAD_UNCHANGED)
    mean = sum(Predictor.from_checkpoint(c).predict_array(image)[0].numpy() for c in two_2d) / 2
    assert np.abs(written.astype(float) - mean * 255).max() <= 0.5 + 1e-6


def test_incompatible_checkpoints_are_one_line(tmp_path, two_2d, checkpoint_3d):
    with pytest.raises(KansegError, match=r"cannot ensemble .*fold0.pt and .*best.pt: they differ in spatial_dims"):
        EnsemblePredictor.from_checkpoints([two_2d[0], checkpoint_3d])
    classes = make_checkpoint(tmp_path / "classes.pt", 2, 3, {"image_size": [32, 32], "intensity": RGB_INTENSITY,
                                                               "classes": ["background", "lesion"]})
    with pytest.raises(KansegError, match=r"differ in classes \(None vs \['background', 'lesion'\]\)"):
        EnsemblePredictor.from_checkpoints([two_2d[0], classes])


def test_cli_ensemble(tmp_path, two_2d, run_cli):
    cv2.imwrite(str(tmp_path / "x.png"), np.full((20, 24, 3), 90, np.uint8))
    code, output = run_cli("--checkpoint", two_2d[0], two_2d[1], tmp_path / "x.png", "--out", tmp_path / "a")
    assert code == 0 and "ensemble of 2 checkpoints" in output and (tmp_path / "a" / "x_mask.png").is_file()
    code, output = run_cli("-c", two_2d[0], "-c", two_2d[1], tmp_path / "x.png", "--out", tmp_path / "b")
    assert code == 0 and "ensemble of 2 checkpoints" in output
    code, output = run_cli("--checkpoint", two_2d[0], tmp_path / "missing.pt", tmp_path / "x.png", "--out", tmp_path)
    assert code == 2 and f"checkpoint not found: {tmp_path / 'missing.pt'}" in output


def test_channel_files_are_grouped_into_cases(tmp_path):
    names = ["a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "c_0001.nii.gz", "sub/d_0000.png", "sub/d_0001.png",
             "e_0000.nii.gz", "e_0001.png", "plain.nii.gz"]
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    scans = collect_inputs([tmp_path], channels=2)
    grouped = {str(s.relative): [p.name for p in s.files] for s in scans}
    assert grouped["a"] == ["a_0000.nii.gz", "a_0001.nii.gz"] and grouped["sub/d"] == ["d_0000.png", "d_0001.png"]
    for alone in ("b_0000", "c_0001", "e_0000", "e_0001", "plain"):  # incomplete, or suffixes differ
        assert grouped[alone] == [f"{alone}.nii.gz" if alone != "e_0001" else "e_0001.png"]
    assert len(scans) == 7
    assert all(not s.channels for s in collect_inputs([tmp_path], channels=1))  # one channel: names kept


def test_multi_file_3d_case_equals_the_4d_volume(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "two.pt", 3, 2, {"image_size": None, "patch_size": [16, 16, 16],
                                                             "intensity": {"kind": "zscore"}})
    rng = np.random.default_rng(2)
    volume = rng.normal(size=(18, 17, 16, 2)).astype(np.float32)
    affine = np.diag([1.5, 1.0, 2.0, 1.0])
    (tmp_path / "in").mkdir()
    for c in range(2):
        nib.save(nib.Nifti1Image(volume[..., c], affine), tmp_path / "in" / f"case_{c:04d}.nii.gz")
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "both.nii.gz")
    report = predict(checkpoint, [tmp_path / "in", tmp_path / "both.nii.gz"], tmp_path / "out", progress=False)
    assert report.ok and len(report.outcomes) == 2
    grouped = nib.load(tmp_path / "out" / "case_mask.nii.gz")
    single = nib.load(tmp_path / "out" / "both_mask.nii.gz")
    assert np.array_equal(grouped.get_fdata(), single.get_fdata()) and np.allclose(grouped.affine, affine)
    nib.save(nib.Nifti1Image(volume[:17, ..., 0], affine), tmp_path / "in" / "case_0001.nii.gz")
    report = predict(checkpoint, tmp_path / "in", tmp_path / "out2", progress=False)
    assert report.failures[0].error.endswith("case_0001.nii.gz: channel file's grid differs from "
                                             f"{tmp_path / 'in' / 'case_0000.nii.gz'}")


def test_multi_file_2d_case_equals_the_stacked_image(tmp_path, checkpoint_2d):
    rgb = np.random.default_rng(3).integers(0, 256, (30, 34, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    for c in range(3):
        cv2.imwrite(str(tmp_path / "in" / f"x_{c:04d}.png"), rgb[..., c])
    report = predict(checkpoint_2d, tmp_path / "in", tmp_path / "out", save_probabilities=True, progress=False)
    assert report.ok and len(report.outcomes) == 1
    expected = Predictor.from_checkpoint(checkpoint_2d).predict_array(rgb)[0].numpy()
    written = cv2.imread(str(tmp_path / "out" / "x_prob.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(written.astype(float) - expected * 255).max() <= 0.5 + 1e-6
