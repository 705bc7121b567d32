"""CLI tests reuse the engine fixtures: generated demo data, one intra-op thread."""

from tests.engine.conftest import demo_root, one_thread  # noqa: F401
