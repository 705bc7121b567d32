"""Dataset fingerprint against numpy, its sampling bound and its cache."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from kanseg.data import build_dataset, generate_synthetic, open_source
from kanseg.data.fingerprint import cached_fingerprint, compute_fingerprint


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return generate_synthetic("multiclass3d", tmp_path_factory.mktemp("fp") / "d", n_cases=6, label_values=(0, 1, 2))


def test_fingerprint_equals_numpy(dataset_root):
    cases = list(open_source(dataset_root).cases.values())
    fp = compute_fingerprint(cases, in_channels=1, label_values=(0, 1, 2))
    canonical = [nib.as_closest_canonical(nib.load(c.image[0])) for c in cases]
    spacings = np.array([img.header.get_zooms()[:3] for img in canonical])
    shapes = np.array([img.shape[:3] for img in canonical])
    foreground = np.concatenate([
        np.asarray(nib.load(c.image[0]).dataobj, dtype=np.float64)[np.asarray(nib.load(c.label[0]).dataobj) > 0]
        for c in cases])
    assert fp["num_cases"] == 6
    np.testing.assert_allclose(fp["spacing"]["median"], np.median(spacings, axis=0), rtol=1e-6)
    np.testing.assert_allclose(fp["spacing"]["min"], spacings.min(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(fp["shape"]["median"], np.median(shapes, axis=0))
    np.testing.assert_array_equal(fp["shape"]["max"], shapes.max(axis=0))
    stats = fp["intensity"][0]
    assert foreground.size < 10_000 * 6  # every foreground voxel counts
    np.testing.assert_allclose(
        [stats["mean"], stats["std"], stats["median"], stats["min"], stats["max"]],
        [foreground.mean(), foreground.std(), np.median(foreground), foreground.min(), foreground.max()], rtol=1e-6)
    np.testing.assert_allclose([stats["percentile_00_5"], stats["percentile_99_5"]],
                               np.percentile(foreground, [0.5, 99.5]), rtol=1e-6)


def test_fingerprint_samples_are_bounded_and_seeded(dataset_root):
    cases = list(open_source(dataset_root).cases.values())
    a = compute_fingerprint(cases, in_channels=1, samples_per_case=50)
    b = compute_fingerprint(cases, in_channels=1, samples_per_case=50)
    full = compute_fingerprint(cases, in_channels=1)
    assert a == b and a["intensity"] != full["intensity"]
    assert abs(a["intensity"][0]["mean"] - full["intensity"][0]["mean"]) < 0.1 * full["intensity"][0]["std"] + 50


def test_fingerprint_cached_and_refreshed_when_a_file_changes(dataset_root, tmp_path):
    source = open_source(dataset_root)
    cases = list(source.cases.values())
    first = cached_fingerprint(tmp_path, "d", source.root, cases, in_channels=1)
    (stored,) = tmp_path.glob("d-*.json")
    assert json.loads(stored.read_text()) == first
    assert cached_fingerprint(tmp_path, "d", source.root, cases, in_channels=1) == first
    path = cases[0].image[0]
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj) * 2, image.affine), str(path))
    assert cached_fingerprint(tmp_path, "d", source.root, cases, in_channels=1) != first
    assert len(list(tmp_path.glob("d-*.json"))) == 2


def test_fingerprint_is_over_the_training_cases_and_stored_in_the_preprocessing(tmp_path):
    root = generate_synthetic("multiclass3d", tmp_path / "d", n_cases=5)
    train, test = build_dataset(root, subset="train"), build_dataset(root, subset="test")
    assert train.preprocessing == test.preprocessing  # the same for every subset (checkpoint check)
    assert train.preprocessing["fingerprint"]["num_cases"] == len(train) == 3
