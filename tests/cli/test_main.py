"""The CLI root: --version, --help, and one-line errors (also for errors raised inside DataLoader workers)."""

import subprocess
import sys

import pytest
from torch.utils.data import DataLoader, Dataset

from kanseg import __version__
from kanseg.cli import _worker_kanseg_error
from kanseg.errors import KansegError


def run(*args):
    return subprocess.run([sys.executable, "-m", "kanseg", *args], capture_output=True, text=True, timeout=300)


def test_version_and_help():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"kanseg {__version__}"
    out = run("--help")
    assert out.returncode == 0
    for command in ("train", "evaluate", "predict", "models", "data", "demo", "benchmark"):
        assert command in out.stdout


class _BadImages(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise KansegError(f"cannot read image case{i}.png: truncated file")


def test_worker_error_is_reduced_to_its_message():
    with pytest.raises(Exception) as info:
        next(iter(DataLoader(_BadImages(), num_workers=1)))
    assert "Traceback" in str(info.value)                    # what torch re-raises
    assert _worker_kanseg_error(info.value) == "cannot read image case0.png: truncated file"


def test_other_worker_errors_are_not_swallowed():
    class Broken(_BadImages):
        def __getitem__(self, i):
            raise ZeroDivisionError("bug")

    with pytest.raises(Exception) as info:
        next(iter(DataLoader(Broken(), num_workers=1)))
    assert _worker_kanseg_error(info.value) is None
