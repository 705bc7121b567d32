"""Importing this module (needs triton) registers every family's Triton kernels."""

from kanseg.kernels import triton_grid, triton_polynomial  # noqa: F401  (registration)
from kanseg.kernels.triton_registry import get_triton_basis, triton_basis_names

__all__ = ["get_triton_basis", "triton_basis_names"]
