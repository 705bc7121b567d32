"""Split algorithms and the frozen manifests: sklearn equivalence, U-KAN order, disjointness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kanseg.data.manifests import MANIFEST_DIR, load_manifest, manifest_splits
from kanseg.data.splits import contiguous_blocks, legacy_split, stratified_folds, ukan_sorted


def test_legacy_split_matches_sklearn_documented_example():
    # sklearn's train_test_split docstring: X = arange(10).reshape(5, 2), test_size=0.33,
    # random_state=42 -> X_train rows [2, 0, 3], X_test rows [1, 4].
    train, test = legacy_split(["0", "1", "2", "3", "4"], seed=42, test_size=0.33)
    assert train == ["2", "0", "3"] and test == ["1", "4"]


def test_legacy_split_is_the_shufflesplit_permutation():
    ids = [f"id{i}" for i in range(647)]
    train, test = legacy_split(ids, seed=2981)
    permutation = np.random.RandomState(2981).permutation(647)
    assert len(test) == 130 and len(train) == 517  # ceil(0.2 * 647) = 130
    assert test == [ids[i] for i in permutation[:130]]
    assert set(train) | set(test) == set(ids) and not set(train) & set(test)


def test_ukan_order_is_string_order_of_file_names():
    assert ukan_sorted(["2", "10", "1", "100"]) == ["1", "10", "100", "2"]
    assert ukan_sorted(["benign (10)", "benign (1)", "benign (2)"]) == ["benign (1)", "benign (10)", "benign (2)"]


def test_stratified_folds_and_blocks():
    ids = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(5)]
    folds = stratified_folds(ids, ["a"] * 10 + ["b"] * 5, n_folds=5, seed=0)
    assert sorted(i for f in folds for i in f) == sorted(ids)
    assert all(sum(i.startswith("a") for i in f) == 2 and sum(i.startswith("b") for i in f) == 1 for f in folds)
    assert contiguous_blocks([str(i) for i in range(1, 8)], ["3", "6"]) == [["1", "2"], ["3", "4", "5"], ["6", "7"]]


@pytest.mark.parametrize("name,n_ids,n_test", [("busi", 647, 130), ("glas", 165, 33), ("cvc", 612, 123)])
@pytest.mark.parametrize("seed", [2981, 6142, 1187])
def test_manifest_legacy_splits_are_recomputable(name, n_ids, n_test, seed):
    manifest = load_manifest(name)
    split = manifest["splits"][f"legacy-{seed}"]
    ids = split["train"] + split["val"]
    assert len(ids) == n_ids and len(split["val"]) == n_test and split["test"] == split["val"]
    assert (split["train"], split["val"]) == legacy_split(ukan_sorted(ids), seed)
    assert "both validation" in split["note"].lower() or "BOTH" in split["note"]


@pytest.mark.parametrize("name", ["busi", "glas", "cvc"])
def test_clean_splits_are_disjoint_and_within_the_release(name):
    manifest = load_manifest(name)
    release = {c["id"] for c in manifest["cases"]}
    assert len(release) == manifest["counts"]["cases"] == len(manifest["cases"])
    for split_name, split in manifest["splits"].items():
        train, val, test = (set(split[k]) for k in ("train", "val", "test"))
        assert train | val | test <= release
        assert not train & test
        if split_name.startswith("transfer-"):  # few-shot: the only labelled frames validate too
            assert val == train and not val & test
        else:
            assert not train & val
        if split_name.startswith("clean"):
            assert not val & test


def test_cvc_transfer_splits_adapt_and_test_on_held_out_sequences():
    splits = load_manifest("cvc")["splits"]
    held_out = set(splits["clean"]["test"])
    for shots in (10, 30):
        split = splits[f"transfer-{shots}shot"]
        frames = sorted(map(int, split["train"]))
        assert len(frames) == shots and set(split["train"]) <= held_out and set(split["test"]) <= held_out
        assert frames[0] == 504 and frames[-1] == 546  # spread over the whole adaptation pool
        assert sorted(map(int, split["test"])) == list(range(547, 613))  # other sequences


def test_specific_clean_protocols():
    busi, glas, cvc = (load_manifest(n) for n in ("busi", "glas", "cvc"))
    lesion_ids = {c["id"] for c in busi["cases"] if c["group"] != "normal"}
    clean = busi["splits"]["clean"]
    assert set(clean["train"]) | set(clean["val"]) | set(clean["test"]) == lesion_ids
    assert (len(clean["train"]), len(clean["val"]), len(clean["test"])) == (387, 130, 130)
    assert len(busi["splits"]["clean"]["extra"]["normal"]["test"]) > 0
    clean = glas["splits"]["clean"]
    assert (len(clean["train"]), len(clean["val"]), len(clean["testA"]), len(clean["testB"])) == (68, 17, 60, 20)
    assert all(i.startswith("train_") for i in clean["train"] + clean["val"])
    blocks = [sorted(map(int, cvc["splits"]["clean"][k])) for k in ("train", "val", "test")]
    assert [b[0] for b in blocks] == [1, 429, 504] and blocks[2][-1] == 612
    assert all(b == list(range(b[0], b[-1] + 1)) for b in blocks)  # contiguous frame ids


def test_busi_manifest_counts_and_multi_masks():
    busi = load_manifest("busi")
    assert busi["counts"] == {"cases": 780, "images": 780, "masks": 798, "benign": 437, "malignant": 210,
                              "normal": 133, "lesion_cases": 647}
    multi = [c for c in busi["cases"] if len(c["files"]) > 2]
    assert (len(multi), sum(len(c["files"]) - 2 for c in multi)) == (17, 18)  # 798 - 780 extra mask files
    assert all(sha is None or len(sha) == 64 for c in busi["cases"] for sha in c["files"].values())
    assert json.loads((MANIFEST_DIR / "busi.json").read_text())["format"] == "kanseg-manifest-v1"


def test_busi_normal_cases_join_every_subset_only_when_asked():
    busi = load_manifest("busi")
    plain, with_normal = manifest_splits(busi), manifest_splits(busi, include_extra=("normal",))
    normal = {c["id"] for c in busi["cases"] if c["group"] == "normal"}
    for split in ("legacy-2981", "clean"):
        added = {k: set(with_normal[split][k]) - set(plain[split][k]) for k in ("train", "val", "test")}
        assert all(ids <= normal and ids for ids in added.values())
        assert added["train"] | added["val"] | added["test"] == normal
    assert (len(with_normal["legacy-2981"]["train"]), len(with_normal["legacy-2981"]["val"])) == (517 + 106, 130 + 27)


def test_manifest_location_can_be_overridden(tmp_path, monkeypatch):
    """A wheel install has no repository folder: $KANSEG_MANIFESTS points at a copy of data_manifests/."""
    import shutil

    from kanseg.data.manifests import manifest_dir
    from kanseg.errors import KansegError

    shutil.copy(MANIFEST_DIR / "cvc.json", tmp_path / "cvc.json")
    monkeypatch.setenv("KANSEG_MANIFESTS", str(tmp_path))
    assert manifest_dir() == tmp_path
    assert load_manifest("cvc")["format"] == "kanseg-manifest-v1"
    with pytest.raises(KansegError, match=r"busi.json is missing; point \$KANSEG_MANIFESTS"):
        load_manifest("busi")


@pytest.mark.parametrize("name", ["busi", "glas", "cvc", "hippocampus"])
def test_clean_folds_cross_validate_train_and_val(name):
    """clean-fold0..4: five disjoint validation folds covering clean's train + val; clean's test untouched."""
    splits = manifest_splits(load_manifest(name), include_extra=("normal",) if name == "busi" else ())
    clean = splits["clean"]
    pool = set(clean["train"]) | set(clean["val"])
    folds = [splits[f"clean-fold{k}"] for k in range(5)]
    assert "clean-fold5" not in splits
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == pool and sum(map(len, vals)) == len(pool)
    assert max(map(len, vals)) - min(map(len, vals)) <= 2
    for fold, val in zip(folds, vals):
        assert fold["test"] == clean["test"] and set(fold["train"]) == pool - val
    if name == "cvc":  # contiguous frame blocks: near-duplicate neighbours stay on one side
        assert all(sorted(map(int, v)) == list(range(min(map(int, v)), max(map(int, v)) + 1)) for v in vals)
    if name == "busi":  # stratified: each fold has about a third malignant cases
        group = {c["id"]: c["group"] for c in load_manifest("busi")["cases"]}
        shares = [sum(group[i] == "malignant" for i in v) / len(v) for v in vals]
        assert max(shares) - min(shares) < 0.05
    if name == "glas":
        assert all(f["testA"] == clean["testA"] and f["testB"] == clean["testB"] for f in folds)


@pytest.mark.parametrize("with_default", [True, False])
def test_dataset_json_folds(synthetic, tmp_path, with_default):
    """fold<k> of a dataset.json: five folds over the non-test cases of its default split (test kept); without
    a default split over every case, test = val as for random-<seed>."""
    import shutil

    from kanseg.data import open_source
    from kanseg.errors import KansegError

    root = synthetic("decathlon2d", n_cases=12)
    if not with_default:
        root = shutil.copytree(root, tmp_path / "data")
        meta = json.loads((root / "dataset.json").read_text())
        del meta["kanseg_splits"]
        (root / "dataset.json").write_text(json.dumps(meta))
    source = open_source(root)
    default = source.splits.get("default") or {"train": sorted(source.cases), "val": [], "test": None}
    pool = set(default["train"]) | set(default["val"])
    vals = [set(source.subset_ids(f"fold{k}", "val")) for k in range(5)]
    assert set().union(*vals) == pool and sum(map(len, vals)) == len(pool)
    for k in range(5):
        assert source.subset_ids(f"fold{k}", "test") == (default["test"] or source.subset_ids(f"fold{k}", "val"))
    assert set(source.subset_ids("fold3", "train")) == pool - vals[3]
    assert "fold<0..4>" in source.split_names()
    with pytest.raises(KansegError, match="fold 5 does not exist"):
        source.subset_ids("fold5", "train")


def test_fold_split_names(tmp_path):
    from kanseg.data.names import fold_split
    from kanseg.errors import KansegError

    assert [fold_split(name, 2) for name in ("busi", "cvc", "glas", "hippocampus", "demo")] == [
        "clean-fold2", "clean-fold2", "clean-fold2", "hippocampus:clean-fold2", "fold2"]
    (tmp_path / "dataset.json").write_text("{}")
    assert fold_split(tmp_path, 0) == "fold0"
    with pytest.raises(KansegError, match="--fold must be 0..4"):
        fold_split("busi", -1)
