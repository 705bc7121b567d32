"""The real CVC-ClinicDB release and BUSI sample in ../shared/data (skipped when absent)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kanseg.data import build_dataset, open_source
from kanseg.data.verify import verify

pytestmark = pytest.mark.shared_data


def _shared_data(shared_dir, name):
    root = shared_dir / "data" / name
    if not root.is_dir():
        pytest.skip(f"{name} not in ../shared/data")
    return root


@pytest.fixture(scope="module")
def cvc_root(shared_dir):
    return _shared_data(shared_dir, "CVC-ClinicDB")


@pytest.fixture(scope="module")
def busi_root(shared_dir):
    return _shared_data(shared_dir, "BUSI-sample")


def test_cvc_release_loads_with_manifest_splits(cvc_root):
    assert len(open_source("cvc", cvc_root).cases) == 612
    val = build_dataset("cvc", data_root=cvc_root, split="legacy-2981", subset="val")
    train = build_dataset("cvc", data_root=cvc_root, split="legacy-2981")
    assert (len(train), len(val)) == (489, 123) and not set(train.ids) & set(val.ids)
    clean_test = build_dataset("cvc", data_root=cvc_root, split="clean", subset="test")
    assert clean_test.ids[0] == "504" and len(clean_test) == 109
    item = val[0]
    assert item["image"].shape == (3, 256, 256) and item["label"].shape == (1, 256, 256)
    # RGB masks with grey edge pixels: > 127 on one channel.
    index = next(i for i in range(len(val)) if len(np.unique(cv2.imread(str(val.cases[i].label[0]))[..., 0])) > 2)
    raw = cv2.imread(str(val.cases[index].label[0]))[..., 0]
    np.testing.assert_array_equal(val.native_label(index), raw > 127)
    assert val.native_image(index).shape == (288, 384, 3)


def test_busi_sample_multi_and_rgba_masks(busi_root):
    dataset = build_dataset("busi", data_root=busi_root, split="all", include_normal=True)
    assert len(dataset) == 65
    assert len(build_dataset("busi", data_root=busi_root, split="all")) == 55  # normal excluded by default
    merged = {i: c for i, c in zip(dataset.ids, dataset.cases) if len(c.label) > 1}
    assert len(merged) == 7 and len(merged["benign (195)"].label) == 3
    for case_id, case in merged.items():
        masks = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0 for p in case.label]
        label = dataset.native_label(dataset.ids.index(case_id))
        np.testing.assert_array_equal(label, np.logical_or.reduce(masks))
        assert 0 < label.mean() < 0.5  # an opaque RGBA alpha must not fill the mask
        assert all((m & ~masks[0]).any() or (m == masks[0]).all() for m in masks[1:])
    rgba = [c.id for c in dataset.cases for p in c.label if cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ndim == 3
            and cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape[2] == 4]
    assert sorted(rgba) == ["benign (4)", "benign (54)"]
    normals = [i for i, c in enumerate(dataset.cases) if c.group == "normal"]
    assert len(normals) == 10 and not any(dataset.native_label(i).any() for i in normals)


def test_verify_busi_sample_reports_the_missing_release(busi_root):
    report = verify("busi", busi_root, checksums=True)
    assert (report.found, report.expected) == (65, 780)
    assert report.count("missing") == 715 and report.optional_missing == 123
    assert sum(report.count(k) for k in ("extra", "corrupt", "no-mask", "size-mismatch", "checksum")) == 0
    assert not report.usable and report.lines()[-1].endswith("-> NOT usable")


def test_verify_cvc_release_with_checksums_is_usable(cvc_root):
    report = verify("cvc", cvc_root, checksums=True)
    assert report.problems == [] and report.usable and "612/612" in report.lines()[-1]
