"""Fixtures of the data tests: small synthetic datasets (session-scoped) and a private cache."""

from __future__ import annotations

import os

import pytest

from kanseg.data import generate_synthetic


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Demo data and prepared arrays go to a temporary KANSEG_CACHE, never ~/.cache."""
    old = os.environ.get("KANSEG_CACHE")
    os.environ["KANSEG_CACHE"] = str(tmp_path_factory.mktemp("kanseg-cache"))
    yield
    if old is None:
        os.environ.pop("KANSEG_CACHE", None)
    else:
        os.environ["KANSEG_CACHE"] = old


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """``synthetic(layout, **kw)`` -> root of a generated dataset, generated once per arguments."""
    made = {}

    def make(layout: str, n_cases: int = 9, **kw):
        key = (layout, n_cases, tuple(sorted(kw.items())))
        if key not in made:
            made[key] = generate_synthetic(layout, tmp_path_factory.mktemp(layout) / "data", n_cases=n_cases, **kw)
        return made[key]

    return make
