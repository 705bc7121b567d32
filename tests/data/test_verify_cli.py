"""``kanseg data verify|prepare`` through the real CLI entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kanseg.cli import main
from kanseg.data import build_dataset, generate_synthetic


def run(capsys, *args) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out.splitlines(), err


def test_good_generic_copy_is_usable(synthetic, capsys):
    code, lines, _ = run(capsys, "verify", "--dataset", synthetic("decathlon2d", n_cases=5, size=24))
    assert code == 0
    assert lines == [lines[-1]] and lines[-1].endswith("-> usable") and ": 5 cases under" in lines[-1]


def test_corrupt_missing_mask_and_size_mismatch_are_named(synthetic, tmp_path, capsys):
    root = shutil.copytree(synthetic("decathlon2d", n_cases=5, size=24), tmp_path / "copy")
    image = root / "imagesTr" / "case_000.png"
    image.write_bytes(image.read_bytes()[:50])
    (root / "labelsTr" / "case_001.png").unlink()
    generate_synthetic("decathlon2d", tmp_path / "small", n_cases=1, size=16)
    shutil.copy(tmp_path / "small" / "labelsTr" / "case_000.png", root / "labelsTr" / "case_002.png")
    code, lines, err = run(capsys, "verify", "--dataset", root / "dataset.json")
    assert code == 1 and "Traceback" not in err
    assert lines[0].startswith("corrupt: cannot read image ") and "case_000.png" in lines[0]
    assert lines[1].startswith("no-mask: ") and "case_001.png has no mask" in lines[1]
    assert lines[2].startswith("size-mismatch: ") and "case_002.png is 16x16, its image is 24x24" in lines[2]
    assert lines[-1].endswith("1 corrupt, 1 no-mask, 1 size-mismatch, checksums not checked -> NOT usable")


def test_official_layout_against_the_manifest(synthetic, tmp_path, capsys):
    # Three CVC frames at the release's size in the PNG mirror layout, plus a stray file.
    root = shutil.copytree(synthetic("cvc", n_cases=3, fmt="png", size=384), tmp_path / "cvc")
    (root / "Original" / "notes.txt").write_text("x")
    code, lines, _ = run(capsys, "verify", "--dataset", "cvc", "--data-root", root, "--checksums")
    assert code == 1
    missing = [line for line in lines if line.startswith("missing: ")]
    assert len(missing) == 609 and "missing: case '4' (Original/4.tif)" in lines
    assert [line for line in lines if line.startswith("extra: ")] == [f"extra: {root / 'Original' / 'notes.txt'}"]
    checksum = [line for line in lines if line.startswith("checksum: ")]
    assert len(checksum) == 6 and "Ground Truth/1.png differs from the release" in "".join(checksum)
    assert not any(line.startswith("size-mismatch") for line in lines)
    assert "3/612 cases" in lines[-1] and "609 missing, 1 extra" in lines[-1] and "6 checksum mismatches" in lines[-1]


def test_missing_root_is_one_error_line(tmp_path, capsys):
    code, lines, err = run(capsys, "verify", "--dataset", "glas", "--data-root", tmp_path / "nothing")
    assert code == 2 and lines == []
    assert err.startswith("error: GlaS not found under ") and err.count("\n") == 1 and "warwick.ac.uk" in err


def test_prepare_caches_every_case(synthetic, capsys):
    root = synthetic("glas", n_cases=4)
    code, lines, _ = run(capsys, "prepare", "--dataset", "glas", "--data-root", root, "--image-size", "32")
    assert code == 0 and lines[0].startswith("cached 4 cases in ")
    folder = Path(lines[0].split(" in ")[1].split(" (")[0])
    assert len(list(folder.glob("*.npz"))) == 4
    assert build_dataset("glas", data_root=root, split="all", image_size=32).cache_dir == folder
