"""Bad dataset.json files and damaged files: one line naming the entry or the file, never a traceback."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from kanseg.cli import main


def run(capsys, *args) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out.splitlines(), err


@pytest.fixture
def copy2d(synthetic, tmp_path):
    """A writable copy of a 4-case Decathlon-style 2D dataset and its parsed dataset.json."""
    root = shutil.copytree(synthetic("decathlon2d", n_cases=4, size=16), tmp_path / "copy")
    return root, json.loads((root / "dataset.json").read_text())


MALFORMED = [
    (lambda m: m["training"][1].pop("image"), 'training[1] has no "image" (keys: \'label\')'),
    (lambda m: m["training"][2].update(image=7), "training[2] 'image' must be a file path (string), got int 7"),
    (lambda m: m["training"][0].update(label="../../etc/passwd.png"),
     "training[0] 'label' path '../../etc/passwd.png' points outside the dataset folder"),
    (lambda m: m["training"].append("imagesTr/x.png"), "training[4] must be an object"),
    (lambda m: m.update(training={"image": "a.png"}), "'training' must be a list"),
    (lambda m: m["training"].append({"image": "./other/case_001.png", "label": "./labelsTr/case_001.png"}),
     "duplicate case id 'case_001'"),
    (lambda m: m.update(labels={"0": "background", "1": 1}), "labels['1'] must be a class name, got int 1"),
    (lambda m: m.update(labels={"background": 0, "blob": "one"}), "labels['blob'] must be an integer label value"),
    (lambda m: m.update(labels={"1": "blob"}), "'labels' has no background class (value 0)"),
    (lambda m: m.update(labels=["background", "blob"]), "'labels' must be a non-empty object"),
    (lambda m: m.update(modality="RGB"), "'modality' must be an object"),
    (lambda m: m["kanseg_splits"]["default"]["val"].append("case_999"),
     "kanseg_splits.default.val names 1 unknown case(s), first 'case_999'"),
    (lambda m: m.update(training=None, file_ending=3), "'file_ending' must be a suffix"),
]


@pytest.mark.parametrize("edit,message", MALFORMED, ids=[f"case{i}" for i in range(len(MALFORMED))])
def test_malformed_dataset_json_is_one_line(copy2d, capsys, edit, message):
    root, meta = copy2d
    edit(meta)
    (root / "dataset.json").write_text(json.dumps(meta))
    code, lines, err = run(capsys, "verify", "--dataset", root)
    assert code == 2 and lines == [] and "Traceback" not in err
    assert err.startswith(f"error: {root / 'dataset.json'}") and message in err and err.count("\n") == 1, err


def test_both_label_map_forms_are_accepted(copy2d, capsys):
    root, meta = copy2d
    forms = ({"0": "background", "1": "a", "2": "b"}, {"background": 0, "a": 1, "b": 2})
    for labels in forms:
        (root / "dataset.json").write_text(json.dumps({**meta, "labels": labels}))
        code, lines, _ = run(capsys, "verify", "--dataset", root)
        assert code == 0 and lines[-1].endswith("-> usable"), labels
    # nnU-Net region labels (a class made of several values) are refused in one line, not misread
    (root / "dataset.json").write_text(json.dumps({**meta, "labels": {"background": 0, "blob": [1, 2]}}))
    code, _, err = run(capsys, "verify", "--dataset", root)
    assert code == 2 and "'blob' is a region" in err and len(err.strip().splitlines()) == 1


def test_label_values_outside_the_map_are_reported(copy2d, capsys):
    import cv2

    root, meta = copy2d
    label = root / "labelsTr" / "case_002.png"
    mask = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    mask[:2, :2] = 3  # a third value: neither background nor the binary map's foreground
    cv2.imwrite(str(label), mask)
    (root / "labelsTr" / "case_001.png").write_bytes(cv2.imencode(".png", mask * 0 + (mask > 0) * 255)[1].tobytes())
    code, lines, _ = run(capsys, "verify", "--dataset", root)
    assert code == 1
    assert lines[0] == (f"labels: {label} holds value(s) 3 that 'labels' in dataset.json does not define "
                        "(it defines 0, 1)")  # case_001 (0/255) is a binary mask stored at another scale: fine
    assert lines[-1].endswith("0 size-mismatch, 1 labels, checksums not checked -> NOT usable")


def test_missing_image_is_missing_not_corrupt_and_every_bad_file_is_named(copy2d, capsys):
    root, _ = copy2d
    (root / "imagesTr" / "case_003.png").unlink()
    label = root / "labelsTr" / "case_003.png"
    label.write_bytes(label.read_bytes()[:30])  # its label is cut too: both are reported
    code, lines, _ = run(capsys, "verify", "--dataset", root)
    assert code == 1
    assert lines[:2] == [f"missing: {root / 'imagesTr' / 'case_003.png'} (image of case 'case_003')",
                         f"corrupt: cannot read image {label}: corrupt, truncated or not an image"]
    assert "1 missing, 0 extra, 1 corrupt" in lines[-1]


@pytest.mark.parametrize("which", ["imagesTr", "labelsTr"])
def test_truncated_nifti_is_reported(synthetic, tmp_path, capsys, which):
    root = shutil.copytree(synthetic("nifti3d", n_cases=3, shape=(24, 24, 16)), tmp_path / "vols")
    path = root / which / "vol_001.nii.gz"
    path.write_bytes(path.read_bytes()[:-20])  # header intact, the end of the gzip stream cut
    plain = root / which / "vol_002.nii"  # an uncompressed copy cut short, listed in dataset.json
    image = nib.load(root / which / "vol_002.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine), plain)
    plain.write_bytes(plain.read_bytes()[:-100])
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"][2][{"imagesTr": "image", "labelsTr": "label"}[which]] = f"./{which}/vol_002.nii"
    (root / "dataset.json").write_text(json.dumps(meta))
    code, lines, err = run(capsys, "verify", "--dataset", root)
    assert code == 1 and "Traceback" not in err
    assert lines[0] == f"corrupt: {path}: cannot read voxel data (EOFError: Compressed file ended before the " \
                       "end-of-stream marker was reached)"
    assert lines[1].startswith(f"corrupt: {plain}: truncated NIfTI (")
    assert "2 corrupt" in lines[-1] and lines[-1].endswith("NOT usable")


def test_train_reports_malformed_json_in_one_line(copy2d, tmp_path, capsys):
    root, meta = copy2d
    del meta["training"][0]["image"]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dataset", str(root / "dataset.json"), "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and 'training[0] has no "image"' in err
    assert not (tmp_path / "run").exists()


def test_one_nifti_size_limit_for_training_and_prediction(tmp_path, monkeypatch):
    from kanseg.data.io import read_image
    from kanseg.errors import KansegError
    from kanseg.inference import read_volume

    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.float32), np.eye(4)), path)
    monkeypatch.setenv("KANSEG_MAX_VOXELS", "100")
    for read in (read_image, lambda p: read_volume(p, in_channels=1)):
        with pytest.raises(KansegError, match="v.nii.gz: header claims 5x5x5 = 125 voxels, more than the limit of 100 "
                                              r"\(KANSEG_MAX_VOXELS\)"):
            read(path)
    monkeypatch.setenv("KANSEG_MAX_VOXELS", "125")
    assert read_image(path).shape == (5, 5, 5, 1)
