"""Python 3.10-3.13: the declared range, and the stdlib-only source check (scripts/check_python.py)."""

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_check(python: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([python, str(REPO / "scripts" / "check_python.py")], capture_output=True, text=True,
                          timeout=600, env=env, cwd=REPO)


def test_requires_python_admits_3_10_to_3_13():
    text = (REPO / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10"' in text
    assert all(f'"Programming Language :: Python :: 3.{minor}"' in text for minor in (10, 11, 12, 13))


def test_source_check_passes_on_this_python():
    out = run_check(sys.executable)
    assert out.returncode == 0, out.stdout
    assert "0 problem(s)" in out.stdout and "0 stop at a third-party package" in out.stdout  # all installed here


def runs(python: str) -> bool:
    try:
        return subprocess.run([python, "--version"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def other_pythons() -> list[str]:
    """One interpreter per other minor version among 3.10, 3.12, 3.13: on PATH, else under ``pyenv root``."""
    pyenv = shutil.which("pyenv")
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip() if pyenv else ""
    found = []
    for minor in (10, 12, 13):
        candidates = [f"python3.{minor}", *sorted(glob.glob(f"{root}/versions/3.{minor}.*/bin/python3.{minor}"))]
        found += [c for c in candidates if runs(c)][:1]
    return [p for p in found if not p.endswith(f"python3.{sys.version_info.minor}")]


@pytest.mark.parametrize("python", other_pythons() or [pytest.param(None, marks=pytest.mark.skip("none found"))])
def test_source_check_passes_on_other_pythons(python):
    out = run_check(python)
    assert out.returncode == 0, out.stdout
