"""KAN basis families. Importing this package registers every family."""

from kanseg.kan.basis import polynomial, spline, wavelet  # noqa: F401  (registration)
from kanseg.kan.basis.base import BasisFamily, get_family, list_families, register_family

__all__ = ["BasisFamily", "get_family", "list_families", "register_family"]
