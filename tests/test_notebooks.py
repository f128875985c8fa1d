"""Every notebook runs top to bottom (it is documentation that must work)."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

# The analyses of full MovieLens and tweets trainings (30-90 s each on 2
# cores) run with `pytest -m slow`; the trainings themselves are tested in
# tests/kinds. The quickstart and the serving client run every time.
SLOW = {
    "02_embeddings_vs_one_hot.ipynb",
    "03_text_classification.ipynb",
    "04_tabular_ranking.ipynb",
}
NOTEBOOKS = [
    pytest.param(path, marks=pytest.mark.slow) if path.name in SLOW else path
    for path in sorted(pathlib.Path("notebooks").glob("*.ipynb"))
]


@pytest.mark.parametrize(
    "path", NOTEBOOKS, ids=lambda p: getattr(p, "name", str(p))
)
def test_notebook_executes(path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
