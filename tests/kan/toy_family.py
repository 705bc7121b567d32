"""A toy polynomial family defined only by its recurrence coefficients: the probabilists' Hermite polynomials
He_n = t·He_{n−1} − (n−1)·He_{n−2}. Registered for one test at a time (the registries are restored afterwards)."""

from kanseg.kan.basis import base, polynomial
from kanseg.kernels import recurrences

HERMITE = recurrences.Recurrence("hermite", lambda n: (1.0, 0.0, n - 1.0), input_map="tanh", post="silu")


class HermiteBasis(polynomial.RecurrenceFamily):
    name = "hermite"
    base_activation = "identity"


def register_hermite(monkeypatch) -> None:
    """Register the toy family (recurrence and eager class) until the test ends."""
    monkeypatch.setitem(recurrences._RECURRENCES, HERMITE.name, HERMITE)
    monkeypatch.setitem(base._FAMILIES, HermiteBasis.name, HermiteBasis)
