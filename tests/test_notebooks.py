"""The notebooks as committed: outputs stripped, one cell tagged ``parameters``, valid nbformat.

Executing them is a separate, slower job: ``pytest --nbmake notebooks/`` (generated data, < 1 minute each).
"""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_expected_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"compare_models", "kan_basis", "kernels"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_with_one_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name}: outputs not stripped"
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], f"{path.name}: the first code cell must be the only parameters cell"
    compile(tagged[0].source, "parameters", "exec")  # plain assignments, no magics
