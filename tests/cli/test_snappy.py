"""Bad names, paths and flags are reported before torch or MONAI is imported: one line, exit code 2."""

import subprocess
import sys

import pytest

from kanseg.cli.checks import MODEL_NAMES

# Runs the CLI and then reports which heavy packages the error path imported.
DRIVER = """\
import sys
from kanseg.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "monai", "albumentations") if m in sys.modules)
print(f"exit={code} heavy={','.join(heavy) or 'none'}")
"""


def run_cli(*args) -> tuple[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", DRIVER, *map(str, args)], capture_output=True, text=True, timeout=120)
    status = [line for line in out.stdout.splitlines() if line.startswith("exit=")]
    return status[-1] if status else out.stdout, out.stderr.strip().splitlines()


CASES = [
    (["data", "verify", "--dataset", "cvc", "--data-root", "{tmp}/no/such/folder"], "CVC-ClinicDB not found under"),
    (["data", "prepare", "--dataset", "nope"], "unknown dataset 'nope'; valid: busi, cvc, glas, demo"),
    (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["train", "--dataset", "demo", "--model", "unet-nope"], "unknown model 'unet-nope'; valid: attunet-gram"),
    (["train", "--dataset", "{tmp}/missing/dataset.json"], "no dataset.json at"),
    (["train", "--dataset", "busi", "--fold", "5", "--data-root", "{tmp}"], "--fold must be 0..4, got 5"),
    (["train", "--bad-flag"], "No such option: --bad-flag"),
    (["train", "--epochs", "many"], "Invalid value for '--epochs'"),
    (["benchmark", "--dataset", "glas", "--data-root", "{tmp}", "--models", "unet-gram,nope"], "unknown model 'nope'"),
    (["evaluate", "--run", "{tmp}"], "is not a kanseg run directory"),
    (["predict", "--checkpoint", "{tmp}/best.pt", "{tmp}", "--out", "{tmp}/o"], "checkpoint not found"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_before_torch(tmp_path, args, message):
    status, err = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert status == "exit=2 heavy=none"


def test_help_imports_nothing_heavy():
    status, _ = run_cli("--help")
    assert status == "exit=0 heavy=none"  # SystemExit(0), as click does


def test_static_model_names_match_the_registry():
    from kanseg.models import list_models

    assert list(MODEL_NAMES) == list_models(), "update kanseg.cli.checks.MODEL_NAMES to the registry's presets"
