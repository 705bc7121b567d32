"""One atomic write for every file kanseg writes; its temporary files are recognised by name."""

import pytest

from kanseg.atomic import atomic_path, is_stale_temp, remove_stale_temps, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = write_text_atomic(tmp_path / "config.yaml", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert is_stale_temp(tmp) and tmp.name.startswith(".config.yaml.") and tmp.name.endswith(".tmp")
            tmp.write_text("half")
            raise RuntimeError("killed midway")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_only_kanseg_temps_are_removed(tmp_path):
    kept = [".last.pt.tmp", "notes.tmp", ".hidden", "x.abcdefgh.tmp", "last.pt"]
    stale = [".last.pt.k3j9x_2a.tmp", ".a_mask.nii.gz.ab12cd34.tmp.nii.gz"]
    for name in (*kept, *stale):
        (tmp_path / name).write_text("x")
    assert [p.name for p in remove_stale_temps(tmp_path)] == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_prefixes_limit_the_clean_up_to_ones_own_outputs(tmp_path):
    mine, theirs = tmp_path / ".a_mask.png.ab12cd34.tmp.png", tmp_path / ".a_x_mask.png.ab12cd34.tmp.png"
    for path in (mine, theirs):
        path.write_text("x")
    assert remove_stale_temps(tmp_path, ["a_mask."]) == [mine] and theirs.exists()
