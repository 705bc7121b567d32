"""The polynomial KAN families defined once: input map, three-term recurrence, post-activation, constants.

    p_0 = 1,   p_1 = A_1·t + B_1,   p_n = (A_n·t + B_n)·p_{n−1} − C_n·p_{n−2}   (n ≥ 2)

A :class:`Recurrence` is read by every path: the eager families (:mod:`kanseg.kan.basis.polynomial`), the Triton
stage-1 and stage-2 kernels (a coefficient table built from it, one generic recurrence loop, one reverse-mode
adjoint), the dispatcher's family lists, the importer and the basis plots (through the eager families).
Plain Python, no torch or triton: ``kanseg.kan`` imports it, and nothing here imports ``kanseg.kan``.

Adding a polynomial family: one :func:`register_recurrence` call here (or anywhere before use) plus its eager class,
a ``RecurrenceFamily`` subclass naming its layer wiring; the kernels pick it up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: ν = clamp(tanh x, ±(1 − ε)) of the ``clamped-tanh`` input map (Chebyshev: keeps T_n = cos(n·acos t) defined).
CLAMP_EPS = 1e-7
#: input maps ν. ``minmax`` is not pointwise (statistics of the image): the eager family computes it, and the kernels
#: receive ν(x) from torch.
INPUT_MAPS = ("identity", "tanh", "clamped-tanh", "sigmoid", "minmax")
#: activations applied to every p_n (``None``: the basis is p_n itself).
POST_ACTIVATIONS = (None, "silu")

Coefficients = Callable[..., tuple[float, float, float]]


@dataclass(frozen=True)
class Recurrence:
    """One polynomial family's math.

    Attributes:
        name: the family's registry name (the eager family and the kernels look it up by this name).
        coefficients: ``(n, **params) -> (A_n, B_n, C_n)`` as Python floats, for n ≥ 1 (C_1 is unused).
        input_map: ν, one of :data:`INPUT_MAPS`.
        post: activation of every p_n, one of :data:`POST_ACTIVATIONS`.
        params: the family's hyperparameters the coefficients take as keywords (Jacobi: ``("a", "b")``).
        learnable: name of a family parameter λ of ``degree + 1`` scalars scaling C: C_n = λ[n−1]·C_n(def), n ≥ 2
            (Gram's ``beta``); ``None`` for fixed coefficients.
    """

    name: str
    coefficients: Coefficients
    input_map: str = "tanh"
    post: str | None = None
    params: tuple[str, ...] = ()
    learnable: str | None = None

    def __post_init__(self):
        if self.input_map not in INPUT_MAPS:
            raise ValueError(f"{self.name}: unknown input map {self.input_map!r}; valid: {', '.join(INPUT_MAPS)}")
        if self.post not in POST_ACTIVATIONS:
            raise ValueError(f"{self.name}: unknown post-activation {self.post!r}; valid: None, silu")

    def at(self, n: int, hparams: dict) -> tuple[float, float, float]:
        """``(A_n, B_n, C_n)`` (fixed part) for a family instance's hyperparameters ``hparams``."""
        return self.coefficients(n, **{k: float(hparams[k]) for k in self.params})

    def table(self, degree: int, hparams: dict) -> list[tuple[float, float, float]]:
        """Rows n = 0 … degree of ``(A_n, B_n, C_n)``; row 0 is zeros (p_0 = 1 needs none)."""
        return [(0.0, 0.0, 0.0)] + [self.at(n, hparams) for n in range(1, degree + 1)]


_RECURRENCES: dict[str, Recurrence] = {}


def register_recurrence(recurrence: Recurrence) -> Recurrence:
    """Add a family's recurrence under ``recurrence.name``; returns it."""
    if recurrence.name in _RECURRENCES:
        raise ValueError(f"recurrence {recurrence.name!r} registered twice")
    _RECURRENCES[recurrence.name] = recurrence
    return recurrence


def get_recurrence(name: str) -> Recurrence | None:
    """The recurrence registered as ``name``, or ``None`` (the family is not a three-term recurrence)."""
    return _RECURRENCES.get(name)


def recurrence_names() -> list[str]:
    """Names of all registered recurrences, sorted."""
    return sorted(_RECURRENCES)


# --- the families ---------------------------------------------------------------------------------------------------
def _gram(n: int) -> tuple[float, float, float]:
    """p_n = t·p_{n−1} − β_{n−1,n}·p_{n−2}, β_{k,m} = beta[k]·(m+k)(m−k)k²(4k²−1)/m² (this is the factor)."""
    k = n - 1
    return 1.0, 0.0, (n + k) * (n - k) * k**2 * (4.0 * k**2 - 1.0) / n**2


def _chebyshev(n: int) -> tuple[float, float, float]:
    """T_1 = t, T_n = 2t·T_{n−1} − T_{n−2}."""
    return (1.0, 0.0, 0.0) if n == 1 else (2.0, 0.0, 1.0)


def _legendre(n: int) -> tuple[float, float, float]:
    """Bonnet: n·P_n = (2n−1)·t·P_{n−1} − (n−1)·P_{n−2}."""
    return (2 * n - 1) / n, 0.0, (n - 1) / n


def _jacobi(n: int, a: float, b: float) -> tuple[float, float, float]:
    """The standard three-term recurrence of P_n^(a,b); P_1 = ((a−b) + (a+b+2)·t)/2."""
    if n == 1:
        return (a + b + 2) / 2, (a - b) / 2, 0.0
    s = 2 * n + a + b
    theta = s * (s - 1) / (2 * n * (n + a + b))
    theta1 = (s - 1) * (a * a - b * b) / (2 * n * (n + a + b) * (s - 2))
    theta2 = (n + a - 1) * (n + b - 1) * s / (n * (n + a + b) * (s - 2))
    return theta, theta1, theta2


GRAM = register_recurrence(Recurrence("gram", _gram, "tanh", post="silu", learnable="beta"))
CHEBYSHEV = register_recurrence(Recurrence("chebyshev", _chebyshev, "clamped-tanh"))
LEGENDRE = register_recurrence(Recurrence("legendre", _legendre, "minmax"))
JACOBI = register_recurrence(Recurrence("jacobi", _jacobi, "tanh", params=("a", "b")))
