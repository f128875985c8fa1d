"""The notebooks run, and their stored outputs are the current code's.

The notebooks are stored executed (figures, tables, printed metrics), so an
analyst sees them on a code host. Two checks keep them honest:

- `test_stored_notebook_is_complete` (cheap, every notebook): the stored file
  was executed top to bottom, has its figures, no error, no machine-specific
  noise, and is < 1 MB.
- `test_notebook_outputs_are_current`: re-executes the notebook in a fresh
  kernel (as `make notebooks` does, through notebooks/execute.py) and compares
  with the stored outputs, cell by cell: the same figures, and the same
  printed numbers within a tolerance.

The numbers compared are the decimal numbers (metrics, scores, losses) in
stdout and in the plain-text or table outputs. Integers (ids, counts) are
left out, so are lines about time, throughput, paths or dates, and table
columns of timings: those differ from run to run and machine to machine.

Notebooks 02-04 analyse full MovieLens and tweets trainings (30-90 s each on
2 cores), and 06 runs a new user's init, train and recommend through the CLI
on a MovieLens export (about 25 s): their
re-execution runs with `pytest -m slow`; the trainings themselves are tested
in tests/kinds. The others re-execute every time.
"""

import html.parser
import importlib.util
import math
import pathlib
import re

import nbformat
import pytest

FOLDER = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SLOW = {
    "02_embeddings_vs_one_hot.ipynb",
    "03_text_classification.ipynb",
    "04_tabular_ranking.ipynb",
    "06_your_own_data.ipynb",
}
PATHS = sorted(FOLDER.glob("*.ipynb"))
NOTEBOOKS = [
    pytest.param(path, marks=pytest.mark.slow) if path.name in SLOW else path
    for path in PATHS
]
MAX_BYTES = 1_000_000

# Printed numbers agree when within 5% or 0.005 of each other. Training is
# seeded and reproduces its metrics exactly on one machine, but an approximate
# index (ScaNN) can return a slightly different top k from run to run (sorted
# scores, within 1% in notebook 01) and another machine rounds differently:
# neither is a change of model or data.
RELATIVE = 0.05
ABSOLUTE = 0.005

_DECIMAL = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)\.\d+(?:[eE][-+]?\d+)?(?![\w.])"
    r"|(?<![\w.])(?:nan|NaN|inf)(?![\w.])"
)
# Lines about time, throughput, paths or dates: their numbers are not the
# code's results.
_VOLATILE = re.compile(
    r"\d\s*(?:s|ms|us|µs|sec|secs|seconds?|min|minutes?)\b"
    r"|\b(?:seconds?|ms|elapsed|latency|p50|p95|p99)\b|/s\b"
    r"|(?<![\w.])(?:[A-Za-z]:)?[/\\][\w.+-]+[/\\]"
    r"|\d{4}-\d\d-\d\d|\d{8}T\d{6}",
    re.IGNORECASE,
)
_TIMING_COLUMN = re.compile(
    r"(?:seconds?|secs?|s|ms|time|.*_seconds|.*per_second.*|.*/s)",
    re.IGNORECASE,
)
_PLOTS = re.compile(r"\bplt\.|\.plot\(|\.hist\(|\.scatter\(|\.imshow\(")


def _executor():
    """notebooks/execute.py, the script `make notebooks` runs."""
    spec = importlib.util.spec_from_file_location(
        "notebooks_execute", FOLDER / "execute.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Table(html.parser.HTMLParser):
    """The rows of pandas' HTML table: `header` and `body`, lists of cells."""

    def __init__(self):
        super().__init__()
        self.header, self.body = [], []
        self._rows = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "thead":
            self._rows = self.header
        elif tag == "tbody":
            self._rows = self.body
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("th", "td") and self._rows:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None and self._rows:
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _table_lines(markup: str) -> list[str]:
    """A DataFrame's rows as lines, without its timing columns."""
    table = _Table()
    table.feed(markup)
    width = max((len(row) for row in table.body), default=0)
    dropped = {
        column
        for row in table.header
        if len(row) == width
        for column, name in enumerate(row)
        if _TIMING_COLUMN.fullmatch(name)
    }
    return [
        " ".join(cell for i, cell in enumerate(row) if i not in dropped)
        for row in table.body
    ]


def _lines(cell) -> list[str]:
    """The lines of a code cell's outputs whose numbers are compared."""
    lines = []
    for output in cell.get("outputs", []):
        kind = output.output_type
        if kind == "stream" and output.name == "stdout":
            lines += output.text.splitlines()
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "image/png" in data:
                continue  # a figure; its text is "<Figure size ...>"
            if "<table" in data.get("text/html", ""):
                lines += _table_lines(data["text/html"])
            else:
                lines += data.get("text/plain", "").splitlines()
    return [line for line in lines if not _VOLATILE.search(line)]


def _numbers(lines: list[str]) -> list[tuple[float, str]]:
    """The decimal numbers of `lines`, each with its line."""
    return [
        (float(match.replace(",", "")), line)
        for line in lines
        for match in _DECIMAL.findall(line)
    ]


def _figures(cell) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for output in cell.get("outputs", [])
    )


def _errors(notebook) -> list[str]:
    return [
        f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=ABSOLUTE)


def compare(stored, executed) -> list[str]:
    """How the executed notebook's outputs differ from the stored ones.

    Args:
        stored: NotebookNode. The notebook as stored.
        executed: NotebookNode. The same notebook, just executed.

    Returns:
        One message per differing cell ("cell N: ..."); empty when they
        agree.
    """
    problems = []
    for index, (old, new) in enumerate(
        zip(stored.cells, executed.cells, strict=True)
    ):
        if old.cell_type != "code":
            continue
        if _figures(old) != _figures(new):
            problems.append(
                f"cell {index}: {_figures(new)} figure(s) drawn, "
                f"{_figures(old)} stored"
            )
        old_numbers = _numbers(_lines(old))
        new_numbers = _numbers(_lines(new))
        if len(old_numbers) != len(new_numbers):
            problems.append(
                f"cell {index}: prints {len(new_numbers)} decimal numbers, "
                f"the stored outputs {len(old_numbers)}"
            )
            continue
        pairs = zip(old_numbers, new_numbers, strict=True)
        for (a, old_line), (b, new_line) in pairs:
            if not _close(a, b):
                problems.append(
                    f"cell {index}: prints {new_line.strip()!r}, "
                    f"stored {old_line.strip()!r}"
                )
                break
    return problems


def _regenerate(path) -> str:
    return (
        f"Regenerate the stored outputs with `make notebooks` (or `python "
        f"notebooks/execute.py {path.name}`) and commit the notebook."
    )


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_stored_notebook_is_complete(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    problems = []
    if path.stat().st_size >= MAX_BYTES:
        problems.append(f"{path.stat().st_size:,} bytes (at most 1 MB)")
    if counts != list(range(1, len(code) + 1)):
        problems.append(
            f"not executed once top to bottom (execution counts {counts})"
        )
    if not any(cell.get("outputs") for cell in code):
        problems.append("no outputs stored")
    problems += _errors(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and _PLOTS.search(cell.source):
            if not _figures(cell):
                problems.append(f"cell {index} plots but stores no figure")
    if _executor().clean(notebook) != notebook:
        problems.append(
            "machine-specific noise stored (local paths, native log lines "
            "or execution times)"
        )
    assert not problems, (
        f"{path.name}: " + "; ".join(problems) + ". " + _regenerate(path)
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_current(path):
    stored = nbformat.read(path, as_version=4)
    executed = _executor().execute(path)  # raises on a failing cell
    assert not _errors(executed)
    problems = compare(stored, executed)
    assert not problems, (
        f"{path.name}: the stored outputs are not the current code's:\n"
        + "\n".join(problems)
        + "\n"
        + _regenerate(path)
    )


def test_compare_names_the_cell_that_changed():
    def notebook(text, figure=True):
        outputs = [nbformat.v4.new_output("stream", text=text)]
        if figure:
            outputs.append(
                nbformat.v4.new_output(
                    "display_data",
                    data={"image/png": "", "text/plain": "<Figure>"},
                )
            )
        cell = nbformat.v4.new_code_cell("plt.plot()", outputs=outputs)
        return nbformat.v4.new_notebook(cells=[cell])

    stored = notebook("hr@10 0.1500\ntraining: 6.1 s, 1,000 examples/s\n")
    assert not compare(
        stored, notebook("hr@10 0.1510\ntraining: 9.9 s, 2,000 examples/s\n")
    )
    assert compare(stored, notebook("hr@10 0.2500\ntraining: 6.1 s\n")) == [
        "cell 0: prints 'hr@10 0.2500', stored 'hr@10 0.1500'"
    ]
    assert compare(stored, notebook("hr@10 0.15 0.3\n")) == [
        "cell 0: prints 2 decimal numbers, the stored outputs 1"
    ]
    assert compare(stored, notebook("hr@10 0.1500\n", figure=False)) == [
        "cell 0: 0 figure(s) drawn, 1 stored"
    ]


def test_tables_leave_out_timing_columns():
    markup = (
        "<table><thead><tr><th></th><th>auc</th><th>seconds</th></tr>"
        "</thead><tbody><tr><th>model</th><td>0.7781</td><td>31.08</td>"
        "</tr></tbody></table>"
    )
    assert _table_lines(markup) == ["model 0.7781"]


def test_execute_strips_machine_specific_stderr():
    execute = _executor()
    site = f"{execute.sys.prefix}/lib/python3.11/site-packages"
    text = (
        f"{site}/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please "
        "update jupyter and ipywidgets.\n"
        "  from .autonotebook import tqdm as notebook_tqdm\n"
        "WARNING: All log messages before absl::InitializeLog() is called "
        "are written to STDERR\n"
        "I0000 00:00:1795911091.006109    1586 partitioner_factory_base.cc:58]"
        " Size of sampled dataset for training partition: 9066\n"
        f"{execute.ROOT}/recsys/evaluation/retrieval.py:80: UserWarning: k=100"
        " is larger than the catalog (40 items)\n"
        "  warnings.warn(message)\n"
        f"loading {execute.ROOT}/artifacts/quickstart\n"
        "warning: 3 users have no test rows\n"
    )
    assert execute.clean_stderr(text) == (
        "UserWarning: k=100 is larger than the catalog (40 items)\n"
        "warning: 3 users have no test rows\n"
    )
