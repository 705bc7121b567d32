"""PEFT as a user runs it: pretrain, ``kanseg train --init-from ... --set peft.*``, checkpoints that rebuild the
wrapped model, ``kanseg peft fuse``, one-line errors."""

import pytest
import torch

from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.cli import main
from kanseg.kan import KANConv
from kanseg.kan.peft import peft_layers
from tests.engine.conftest import demo_root  # noqa: F401  (the fixture)


def kanseg(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_info.value.code or 0, out.out, out.err


def _train_args(root, out, *extra):
    return ["train", "--dataset", "demo", "--data-root", root, "--model", "unet-gram", "--image-size", 32,
            "--set", "model.kwargs={base_width: 4, depth: 2}", "--epochs", 1, "--batch-size", 8, "--device", "cpu",
            "--out", out, *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_root):  # noqa: F811  (the fixture)
    root = tmp_path_factory.mktemp("peft-runs")
    for args in (_train_args(demo_root, root / "pre"),
                 _train_args(demo_root, root / "ft", "--init-from", root / "pre" / "best.pt",
                             "--set", "peft.extra_degrees=1", "--set", "peft.trainable_degrees=[3]")):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        assert not exit_info.value.code
    return root


def test_finetune_records_peft_and_keeps_the_pretrained_weights(runs):
    pre, ft = load_checkpoint(runs / "pre" / "best.pt"), load_checkpoint(runs / "ft" / "best.pt")
    assert "peft" not in pre
    assert ft["peft"] == {"extra_degrees": 1, "trainable_degrees": [3], "finetune_base": False, "freeze_norm": False}
    assert "extra_degrees: 1" in (runs / "ft" / "config.yaml").read_text()
    for key, value in pre["state_dict"].items():  # frozen KAN weights stay the pretrained ones
        if ".basis_conv." in key or ".base_conv." in key:
            peft_key = key.replace(".basis_conv.", ".conv.basis_conv.").replace(".base_conv.", ".conv.base_conv.")
            assert torch.equal(ft["state_dict"][peft_key], value)
    model = build_model(ft)
    assert peft_layers(model) and any(p.abs().sum() > 0 for n, p in model.named_parameters()
                                      if n.endswith("extra_weight"))
    assert "trainable" in (runs / "ft" / "log.txt").read_text()


def test_fuse_writes_a_plain_checkpoint(runs, capsys):
    code, out, err = kanseg(capsys, "peft", "fuse", "--checkpoint", runs / "ft" / "best.pt",
                            "--out", runs / "fused.pt")
    assert code == 0, err
    assert "plain preset" in out
    fused_ckpt = load_checkpoint(runs / "fused.pt")
    assert "peft" not in fused_ckpt and fused_ckpt["model"]["kwargs"]["block_options"]["degree"] == 4
    fused = build_model(fused_ckpt)
    assert not peft_layers(fused) and {m.basis.degree for m in fused.modules() if isinstance(m, KANConv)} == {4}
    peft_model = build_model(load_checkpoint(runs / "ft" / "best.pt"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y_peft, y_fused = peft_model(x), fused(x)
    assert (y_fused - y_peft).abs().max() <= 1e-5 * (1 + y_peft.abs().max())


@pytest.mark.parametrize("case", ["fuse-plain", "init-from-peft", "plain-model-peft-weights"])
def test_bad_input_one_line(runs, capsys, demo_root, case):  # noqa: F811
    if case == "fuse-plain":
        code, _, err = kanseg(capsys, "peft", "fuse", "--checkpoint", runs / "pre" / "best.pt",
                              "--out", runs / "x.pt")
        assert "is not a PEFT checkpoint" in err
    elif case == "init-from-peft":
        code, _, err = kanseg(capsys, *_train_args(demo_root, runs / "bad", "--init-from", runs / "ft" / "best.pt"))
        assert "holds a PEFT-wrapped model" in err and not (runs / "bad").exists()
    else:
        ckpt = load_checkpoint(runs / "ft" / "best.pt")
        del ckpt["peft"]
        from kanseg.errors import KansegError

        with pytest.raises(KansegError, match="PEFT-wrapped model, this model is plain") as info:
            build_model(ckpt)
        code, err = 2, f"error: {info.value}\n"
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_models_details_shows_peft_trainable_and_frozen(capsys):
    code, out, err = kanseg(capsys, "models", "--details", "--pattern", "unet-[gr][rb][af]*", "--size-2d", 32,
                            "--size-3d", 32)
    assert code == 0, err
    assert "PEFT E=1 2D trainable/frozen" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("unet-")}
    assert rows["unet-gram"].endswith("1.96 M / 9.81 M") and rows["unet-rbf"].endswith("-")


def test_peft_run_resumes(runs):
    from kanseg.config import load_config
    from kanseg.engine import train

    cfg = load_config(runs / "ft" / "config.yaml", {"out": str(runs / "ft2"), "epochs": 2})
    assert cfg.peft.enabled and cfg.init_from
    train(cfg, stop_after=1)
    result = train(load_config(runs / "ft2" / "config.yaml"), resume=runs / "ft2")
    assert load_checkpoint(result.run_dir / "last.pt")["epoch"] == 2
    assert peft_layers(build_model(load_checkpoint(result.run_dir / "last.pt")))


def test_freeze_encoder_keeps_its_weights_and_trains_the_rest(runs, capsys, demo_root):  # noqa: F811
    code, _, err = kanseg(capsys, *_train_args(demo_root, runs / "frozen", "--init-from", runs / "pre" / "best.pt",
                                               "--set", "freeze=[encoder]"))
    assert code == 0, err
    pre, ft = load_checkpoint(runs / "pre" / "best.pt"), load_checkpoint(runs / "frozen" / "best.pt")
    encoder = [k for k in pre["state_dict"] if k.startswith("encoder.") and "running_" not in k
               and "num_batches" not in k]
    assert encoder and all(torch.equal(ft["state_dict"][k], pre["state_dict"][k]) for k in encoder)
    decoder = [k for k in pre["state_dict"] if k.startswith("decoder.") and k.endswith("weight")]
    assert any(not torch.equal(ft["state_dict"][k], pre["state_dict"][k]) for k in decoder)
    import json

    run = json.loads((runs / "frozen" / "summary.json").read_text())["run"]
    trainable = sum(v.numel() for k, v in pre["state_dict"].items()
                    if not k.startswith("encoder.") and "running_" not in k and "num_batches" not in k)
    assert run["trainable_params"] == trainable < run["params"]


def test_freeze_unknown_module_one_line(runs, capsys, demo_root):  # noqa: F811
    code, _, err = kanseg(capsys, *_train_args(demo_root, runs / "bad-freeze", "--set", "freeze=[encodr]"))
    assert code != 0 and "no parameter of the model is under 'encodr'" in err and "encoder" in err
    assert err.count("\n") == 1 and not (runs / "bad-freeze" / "best.pt").exists()
