"""`kanseg export`: one output line per file written, one `error:` line and a non-zero exit for bad input,
and nothing half-written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from kanseg.cli import main
from kanseg.kan.basis import base
from kanseg.kan.basis.spline import RBFBasis

pytest.importorskip("onnxruntime")


def run(*args):
    return subprocess.run([sys.executable, "-m", "kanseg", "export", *args], capture_output=True, text=True,
                          timeout=300)


def assert_one_error_line(out, *fragments):
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_exports_onnx(checkpoint_factory, tmp_path):
    out = run("--checkpoint", str(checkpoint_factory("unet-gram")), "--format", "onnx", "--out", str(tmp_path / "x"))
    assert out.returncode == 0, out.stderr
    assert "model.onnx" in out.stdout and "max abs difference" in out.stdout
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["config.json", "model.onnx"]


def test_bad_arguments_one_line(checkpoint_factory, tmp_path):
    ckpt = str(checkpoint_factory("unet-conv"))
    assert_one_error_line(run("--checkpoint", ckpt, "--format", "tflite", "--out", str(tmp_path / "a")),
                          "unknown export format 'tflite'", "onnx, torchscript, safetensors")
    assert_one_error_line(run("--checkpoint", str(tmp_path / "nope.pt"), "--format", "onnx", "--out",
                              str(tmp_path / "b")), "checkpoint not found")
    a_file = tmp_path / "taken"
    a_file.write_text("keep me")
    assert_one_error_line(run("--checkpoint", ckpt, "--format", "onnx", "--out", str(a_file)), "is a file")
    assert a_file.read_text() == "keep me"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert_one_error_line(run("--checkpoint", str(corrupt), "--format", "safetensors", "--out", str(tmp_path / "c")),
                          "cannot read checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []  # no output folder left behind


class BesselRBFBasis(RBFBasis):
    """FastKAN passed through a Bessel function: an op the ONNX exporter has no translation for."""

    name = "bessel-rbf"

    def basis(self, t):
        return torch.special.bessel_j0(super().basis(t))


def test_unexportable_model_says_why(monkeypatch, checkpoint_factory, tmp_path, capsys):
    monkeypatch.setitem(base._FAMILIES, BesselRBFBasis.name, BesselRBFBasis)
    ckpt = checkpoint_factory("unet-conv", encoder_block="kan:bessel-rbf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_text("previous export")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert exit_info.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'unet-conv' cannot be exported to ONNX: ")
    assert "bessel_j0" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]  # the previous export, untouched
    assert (out / "model.onnx").read_text() == "previous export"
