"""CLI tests reuse the engine fixtures (generated demo data)."""

from tests.engine.conftest import demo_root  # noqa: F401
