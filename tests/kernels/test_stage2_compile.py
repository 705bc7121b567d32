"""The implicit-GEMM kernels (stage 2) compile for a real GPU (sm_90), checked without a GPU in a fresh process.

Slow (one Triton compile per kernel, family and dtype: minutes on 2 CPU cores): ``pytest -m slow``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")


@pytest.mark.slow
def test_stage2_kernels_compile_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("stage2_compile_check.py")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=root, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(" ok") == 9  # CASES: 5 families in bf16, gram in fp32, fp16, fp64, gram bf16 + base
