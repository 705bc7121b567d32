"""Adapters of the benchmark datasets, by name."""

from __future__ import annotations

from kanseg.data.adapters.base import DatasetAdapter
from kanseg.data.adapters.busi import BUSI
from kanseg.data.adapters.cvc import CVCClinicDB
from kanseg.data.adapters.glas import GlaS
from kanseg.errors import KansegError

ADAPTERS: dict[str, DatasetAdapter] = {a.name: a for a in (BUSI(), GlaS(), CVCClinicDB())}


def get_adapter(name: str) -> DatasetAdapter:
    if name not in ADAPTERS:
        raise KansegError(f"no adapter for dataset {name!r}; valid: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]


__all__ = ["ADAPTERS", "DatasetAdapter", "get_adapter"]
