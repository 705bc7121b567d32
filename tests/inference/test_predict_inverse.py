"""Prediction undoes reorientation and resampling: masks on the input's exact grid, shape and affine."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from kanseg.checkpoint import save_checkpoint
from kanseg.data import build_dataset, generate_synthetic
from kanseg.data.spatial import canonical_spacing
from kanseg.errors import KansegError
from kanseg.inference import Predictor, write_nifti
from kanseg.inference.predictor import probabilities_to_mask
from kanseg.models import create_model


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Fingerprints go to a temporary KANSEG_CACHE, never ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KANSEG_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    # label values 0/3/8 on disk; affines cycle through axis permutations and flips, spacings jittered
    return generate_synthetic("multiclass3d", tmp_path_factory.mktemp("inv") / "d", n_cases=8, label_values=(0, 3, 8))


def _oracle_predictor(dataset, index):
    """A Predictor whose network 'predicts' the ground truth of case ``index`` on the model grid."""
    kwargs = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "depth": 2, "base_width": 4}
    predictor = Predictor(create_model("unet-conv", **kwargs), dataset.preprocessing, roi_size=16, device="cpu")
    label = dataset[index]["label"][0].long()

    def predict_tensor(image, progress=False):
        assert image.shape[1:] == label.shape  # the predictor resampled exactly like the dataset
        return torch.nn.functional.one_hot(label, 3).permute(3, 0, 1, 2).float()

    predictor.predict_tensor = predict_tensor
    return predictor


def _predict_and_write(dataset, index, out):
    case = dataset.cases[index]
    reference = nib.load(case.image[0])
    volume = np.asarray(reference.dataobj, dtype=np.float32)[..., None]
    prob = _oracle_predictor(dataset, index).predict_volume(volume, reference.affine)
    mask = np.asarray(dataset.preprocessing["label_values"], np.uint8)[probabilities_to_mask(prob)]
    written = nib.load(write_nifti(out, mask, reference))
    assert written.shape == reference.shape and np.array_equal(written.affine, reference.affine)
    return np.asarray(written.dataobj), np.asarray(nib.load(case.label[0]).dataobj)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_pure_reorientation_round_trip_is_exact(root, index, tmp_path):
    reference = nib.load(root / "imagesTr" / f"mc_{index:03d}.nii.gz")
    own_spacing = canonical_spacing(reference.affine, reference.header.get_zooms())
    dataset = build_dataset(root, split="all", subset="test", spacing=own_spacing)
    assert index == 0 or nib.aff2axcodes(reference.affine) != ("R", "A", "S")  # really reoriented
    predicted, truth = _predict_and_write(dataset, index, tmp_path / "mask.nii.gz")
    np.testing.assert_array_equal(predicted, truth)


@pytest.mark.parametrize("index", [0, 2, 5, 7])
def test_resampled_round_trip_keeps_grid_and_label_values(root, index, tmp_path):
    dataset = build_dataset(root, split="all", subset="test", spacing=(0.8, 0.9, 1.1))
    predicted, truth = _predict_and_write(dataset, index, tmp_path / "mask.nii.gz")
    assert set(np.unique(predicted)) == {0, 3, 8}
    assert (predicted == truth).mean() > 0.97
    for value in (3, 8):  # per-class Dice of the round trip
        a, b = predicted == value, truth == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9


def test_dataset_to_native_matches_the_predictor(root):
    dataset = build_dataset(root, split="all", subset="test")
    label = dataset[3]["label"][0].long()
    prob = torch.nn.functional.one_hot(label, 3).permute(3, 0, 1, 2).float()
    native = dataset.to_native(3, prob)
    assert native.shape[1:] == dataset.native_label(3).shape
    assert (native.argmax(0).numpy() == dataset.native_label(3)).mean() > 0.97


def test_checkpoint_predictor_returns_probabilities_on_the_native_grid(root, tmp_path):
    dataset = build_dataset(root, split="all", subset="test")
    kwargs = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "depth": 2, "base_width": 4}
    model = create_model("unet-conv", **kwargs)
    path = save_checkpoint(tmp_path / "best.pt", model_name="unet-conv", model_kwargs=kwargs,
                           state_dict=model.state_dict(), preprocessing=dataset.preprocessing)
    predictor = Predictor.from_checkpoint(path, roi_size=16, device="cpu")
    reference = nib.load(dataset.cases[1].image[0])
    volume = np.asarray(reference.dataobj, dtype=np.float32)
    prob = predictor.predict_volume(volume[..., None], reference.affine)
    assert prob.shape == (3, *volume.shape)
    torch.testing.assert_close(prob.sum(0), torch.ones(volume.shape))
    assert predictor.predict_mask(volume[..., None], affine=reference.affine).shape == volume.shape


def test_volume_too_large_for_the_predictor_is_one_line(root):
    dataset = build_dataset(root, split="all", subset="test")
    kwargs = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "depth": 2, "base_width": 4}
    predictor = Predictor(create_model("unet-conv", **kwargs), dataset.preprocessing, device="cpu", max_volume_mb=0.001)
    reference = nib.load(dataset.cases[0].image[0])
    with pytest.raises(KansegError, match=r"input volume: .* MB after resampling, more than the predictor's max_volume_mb=0.001"):
        predictor.predict_volume(np.zeros((*reference.shape, 1), np.float32), reference.affine)
