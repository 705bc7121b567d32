import pytest
from typer.testing import CliRunner

from kanseg.cli import app
from kanseg.kan import list_families
from kanseg.models import list_models

runner = CliRunner()


def test_models_lists_families_and_every_preset():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert ", ".join(list_families()) in result.output
    for name in list_models():
        assert f"\n{name} " in result.output


def test_models_details_shows_params_and_flops_at_stated_sizes():
    result = runner.invoke(app, ["models", "--details", "--pattern", "ukagnet", "--size-2d", "64", "--size-3d", "16"])
    assert result.exit_code == 0, result.output
    assert "GFLOPs 2D 64^2" in result.output and "GFLOPs 3D 16^3" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("ukagnet "))
    assert "9.81 M" in row and "29.42 M" in row


def test_models_pattern_without_match_says_so():
    result = runner.invoke(app, ["models", "--pattern", "nope*"])
    assert result.exit_code == 0
    assert "No model preset matches 'nope*'" in result.output


def test_models_details_size_too_small_message(capsys):
    from kanseg.cli import main

    with pytest.raises(SystemExit) as exit_info:  # depth 5 + instance norm: one voxel at the deepest level
        main(["models", "--details", "--pattern", "attunet-gram", "--size-2d", "32", "--size-3d", "16"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.startswith("error: attunet-gram: cannot measure a 3D input of size 16") and "--size-3d" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_recommended_presets_are_marked_and_filtered():
    from kanseg.models import get_preset

    recommended = [n for n in list_models() if get_preset(n).recommended]
    assert recommended, "kanseg models promises measured recommendations"
    result = runner.invoke(app, ["models"])
    for name in list_models():
        assert (f"\n{name} * " in result.output) == (name in recommended)
    assert "* recommended: backed by kanseg's own multi-seed measurements" in result.output
    only = runner.invoke(app, ["models", "--recommended"])
    assert only.exit_code == 0 and f"Model presets ({len(recommended)}):" in only.output
    assert all(f"\n{name} * " in only.output for name in recommended)
    none = runner.invoke(app, ["models", "--recommended", "--pattern", "unetpp-*"])
    assert none.exit_code == 0 and "No recommended model preset matches 'unetpp-*'" in none.output
