"""The kernels read a family's definition and nothing else: a toy family registered in a test (only its recurrence
coefficients and an eager class naming its wiring) runs through both Triton stages and equals the eager layer."""

import pytest
import torch

from tests.kernels.interpreter import DEVICE, assert_matches_eager  # first: switches the interpreter on
from kanseg import kernels  # noqa: E402
from kanseg.kan import create_kan_conv  # noqa: E402
from kanseg.kernels.recurrences import recurrence_names  # noqa: E402
from kanseg.kernels.triton_families import get_triton_basis, triton_basis_names  # noqa: E402
from tests.kan.toy_family import register_hermite  # noqa: E402


def test_family_lists_come_from_the_definitions():
    assert set(recurrence_names()) <= set(kernels.TRITON_FAMILIES) & set(kernels.STAGE2_FAMILIES)


@pytest.fixture
def hermite(monkeypatch):
    register_hermite(monkeypatch)
    assert "hermite" in kernels.triton_family_names() and "hermite" in kernels.stage2_family_names()
    assert "hermite" in triton_basis_names()
    torch.manual_seed(0)
    return create_kan_conv("hermite", 2, 4, 6, 3, padding=1, groups=2).double().to(DEVICE)


def test_toy_family_stage1_equals_eager(hermite):
    spec = get_triton_basis(hermite.basis)
    assert spec.npart == 0 and not spec.torch_input_map
    x = torch.randn(2, 4, 7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(DEVICE)
    assert_matches_eager(hermite, x, "triton", rtol=1e-9, atol=1e-11, nontrivial=True)


def test_toy_family_stage2_equals_eager(hermite):
    x = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(DEVICE)
    assert_matches_eager(hermite, x, "implicit_gemm", rtol=1e-9, atol=1e-11, nontrivial=True)
