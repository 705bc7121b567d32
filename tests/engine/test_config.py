"""kanseg.config: YAML defaults < flags, one-line errors listing valid keys, resolved dump."""

from pathlib import Path

import pytest
import yaml

from kanseg.config import TrainConfig, load_config, parse_assignment, save_config, valid_keys
from kanseg.errors import KansegError
from kanseg.models import list_models

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\ndata:\n  dataset: busi\n  image_size: 128\noptim:\n  lr: 0.001\n")
    cfg = load_config(path, {"epochs": 3, "data.split": "clean", "optim.lr": None})
    assert cfg.epochs == 3  # flag wins
    assert cfg.data.dataset == "busi" and cfg.data.image_size == 128 and cfg.data.split == "clean"
    assert cfg.optim.lr == 0.001  # None means "flag not given"
    assert cfg.batch_size == TrainConfig().batch_size  # default kept


def test_invalid_key_in_yaml_lists_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(KansegError, match=r"invalid config key 'optim.learning_rate'.*valid keys: .*optim\.lr") as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_invalid_override_key_and_value():
    with pytest.raises(KansegError, match="invalid config key 'optim.momentum'; valid keys: data.dataset"):
        load_config(None, {"optim.momentum": 0.9})
    with pytest.raises(KansegError, match="invalid value for 'epochs'"):
        load_config(None, {"epochs": 0})
    with pytest.raises(KansegError, match="invalid value for 'amp'"):
        load_config(None, {"amp": "fp8"})


def test_model_kwargs_are_free_form_and_set_parses_yaml():
    key, value = parse_assignment("model.kwargs.base_width=8")
    cfg = load_config(None, {key: value, **dict([parse_assignment("optim.kan_lr=1e-2")])})
    assert cfg.model.kwargs == {"base_width": 8} and cfg.optim.kan_lr == 0.01
    with pytest.raises(KansegError, match="KEY=VALUE"):
        parse_assignment("epochs")


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(KansegError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(KansegError, match="cannot parse"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(KansegError, match="mapping"):
        load_config(listy)


def test_resolved_dump_round_trips(tmp_path):
    cfg = load_config(None, {"data.dataset": "glas", "data.image_size": [64, 48], "seed": 5})
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(path) == cfg
    assert set(yaml.safe_load(path.read_text())) == {k.split(".")[0] for k in valid_keys()}
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp file left


@pytest.mark.parametrize("name", ["busi", "glas", "cvc", "cpu-quick", "cvc-cpu"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.data.dataset in ("busi", "glas", "cvc")
    if name == "cvc-cpu":  # clean split, validated (and so kept) at the last epoch only
        assert cfg.data.split == "clean" and cfg.val_every == cfg.epochs and cfg.model.name in list_models()
    elif name != "cpu-quick":  # the legacy U-KAN protocol
        assert (cfg.epochs, cfg.batch_size, cfg.optim.lr, cfg.optim.kan_lr) == (400, 8, 1e-4, 1e-2)
        assert (cfg.optim.min_lr, cfg.optim.weight_decay, cfg.loss.bce_weight, cfg.loss.dice_weight) == (
            1e-5, 1e-4, 0.5, 1.0)
        assert cfg.data.split == "legacy-2981" and cfg.monitor == "ukan_iou"
        assert cfg.data.image_size == (512 if name == "glas" else 256)


def test_run_fingerprint_ignores_where_a_run_lives():
    from kanseg.engine.setup import run_digest, run_fingerprint

    base = load_config(None, {"data.dataset": "demo"})
    moved = load_config(None, {"data.dataset": "demo", "out": "elsewhere", "device": "cpu", "data.data_root": "/x",
                               "data.num_workers": 3})
    assert run_fingerprint(base) == run_fingerprint(moved) and run_digest(base) == run_digest(moved)
    assert len(run_digest(base)) == 8
    assert run_digest(load_config(None, {"data.dataset": "demo", "seed": 1})) != run_digest(base)


def test_later_settings_leave_default_fingerprints_alone():
    """Options added after the first runs stay out of the fingerprint at their default: old digests still match."""
    from kanseg.engine.setup import run_digest, run_fingerprint

    base = load_config(None, {"data.dataset": "demo"})
    fingerprint = run_fingerprint(base)
    assert "early_stop" not in fingerprint and "tensorboard" not in fingerprint
    assert "focal_gamma" not in fingerprint["loss"] and "accumulate" not in fingerprint["optim"]
    assert run_digest(load_config(None, {"data.dataset": "demo", "tensorboard": True})) == run_digest(base)
    changed = load_config(None, {"data.dataset": "demo", "optim.accumulate": 2, "early_stop.patience": 5})
    assert run_fingerprint(changed)["optim"]["accumulate"] == 2 and run_fingerprint(changed)["early_stop"] == {
        "patience": 5}  # min_delta left at its default
    assert run_digest(changed) != run_digest(base)


def test_set_reaches_keys_that_also_have_flags_and_flags_win():
    from kanseg.cli.train import _overrides

    cfg = load_config(None, _overrides(dataset="demo", settings=["epochs=1", "data.image_size=32", "seed=4"]))
    assert (cfg.epochs, cfg.data.image_size, cfg.seed) == (1, 32, 4)  # flags not given do not erase --set
    cfg = load_config(None, _overrides(dataset="demo", epochs=3, settings=["epochs=1"]))
    assert cfg.epochs == 3


def test_dotted_overrides_never_write_into_the_callers_objects():
    kwargs = {"base_width": 8}
    cfg = load_config(None, {"model.kwargs": kwargs, "model.kwargs.depth": 3})
    assert cfg.model.kwargs == {"base_width": 8, "depth": 3} and kwargs == {"base_width": 8}



def test_run_fingerprint_ignores_later_keys_at_their_default():
    """Keys added after runs existed leave the fingerprint (and the run digest in folder names) unchanged while at
    their default, so older run folders keep their names; a non-default value makes a different run."""
    from kanseg.engine.setup import run_digest, run_fingerprint

    base = load_config(None, {"data.dataset": "demo"})
    fingerprint = run_fingerprint(base)
    assert not {"freeze", "init_from", "peft"} & set(fingerprint)
    assert not {"l1_weight", "l1_activation", "l2_activation", "activation_per_sample"} & set(fingerprint["loss"])
    for key, value in (("freeze", ["encoder"]), ("init_from", "x.pt"), ("peft.extra_degrees", 1),
                       ("loss.l1_weight", 1e-4)):
        changed = load_config(None, {"data.dataset": "demo", key: value})
        assert run_fingerprint(changed) != fingerprint and run_digest(changed) != run_digest(base)


def test_model_spec_kwargs_nest_settings_apply_and_labels_are_stable():
    from kanseg.config import parse_model_spec

    spec = parse_model_spec("unet-gram@block_options.degree=2@base_width=4@optim.kan_lr=3e-3@epochs=2")
    assert spec.kwargs == {"block_options": {"degree": 2}, "base_width": 4}
    assert spec.settings == {"optim.kan_lr": 0.003, "epochs": 2}  # 3e-3 is a float, not YAML 1.1's string
    assert spec.label == "unet-gram@base_width=4@block_options.degree=2@epochs=2@optim.kan_lr=0.003"
    base = load_config(None, {"model.kwargs": {"depth": 3, "block_options": {"norm": "batch"}}, "epochs": 9})
    cfg = spec.apply(base)
    assert cfg.model.name == "unet-gram" and cfg.epochs == 2 and cfg.optim.kan_lr == 0.003
    assert cfg.model.kwargs == {"depth": 3, "base_width": 4, "block_options": {"norm": "batch", "degree": 2}}
    assert base.model.kwargs == {"depth": 3, "block_options": {"norm": "batch"}} and base.epochs == 9
    with pytest.raises(KansegError, match="invalid value for 'epochs'"):
        parse_model_spec("unet-gram@epochs=many").apply(base)
    assert parse_assignment("optim.lr=3e-4") == ("optim.lr", 3e-4)
    assert parse_assignment("out=runs/x") == ("out", "runs/x") and parse_assignment("amp=off") == ("amp", "off")
    cfg = load_config(None, dict(parse_assignment(s) for s in ("amp=off", "data.augment=no", "tensorboard=yes")))
    assert cfg.amp == "off" and cfg.data.augment is False and cfg.tensorboard is True
    assert TrainConfig.model_validate(yaml.safe_load("amp: off")).amp == "off"  # YAML 1.1 reads off as false
