"""Re-execute notebooks in place and store them with clean outputs.

The notebooks are stored executed, so that an analyst reading them on a code
host sees the figures and tables. `make notebooks` (or this script) runs each
one top to bottom in a fresh kernel, with the settings that
tests/test_notebooks.py uses, and strips what only describes the machine that
ran it: warning lines naming local files, tqdm's "IProgress not found" notice,
ScaNN's and TensorFlow's native log lines (timestamps, process ids) and the
per-cell execution times. tests/test_notebooks.py re-executes them the same
way and fails when the stored outputs no longer match the current code.

Usage:

```
python notebooks/execute.py                       # every notebook
python notebooks/execute.py 06_your_own_data      # some, by name or path
```
"""

from __future__ import annotations

import copy
import pathlib
import re
import sys
import time

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

# Whole stderr lines that are noise wherever they come from.
_NOISE = [
    # tqdm.auto in a kernel without ipywidgets.
    re.compile(r"IProgress not found"),
    re.compile(r"from \.?autonotebook import|tqdm\.autonotebook"),
    # absl (ScaNN) and TensorFlow native logs: time stamp, thread id, file.
    re.compile(r"^WARNING: All log messages before absl::InitializeLog"),
    re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"),
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "),
]
# `warnings.warn` prints "PATH:LINE: Category: message" then the source line.
_WARNING = re.compile(r"^(?:[A-Za-z]:)?[^\s:]*[/\\][^\s:]+\.py:\d+: (\w+: .*)$")


def _local_paths() -> list[str]:
    """Directories whose names only describe this machine."""
    paths = {str(ROOT), sys.prefix, sys.base_prefix, str(pathlib.Path.home())}
    return sorted((p for p in paths if len(p) > 1), key=len, reverse=True)


def clean_stderr(text: str) -> str:
    """`text` (a cell's stderr) without machine-specific lines.

    A warning keeps its category and message and loses the local file name
    and source line; other lines naming a local directory are dropped.

    Args:
        text: str. The stream's text.

    Returns:
        The cleaned text ("" when nothing is left).
    """
    kept: list[str] = []
    skip_source_line = False
    for line in text.splitlines(keepends=True):
        if skip_source_line and line.startswith("  "):
            skip_source_line = False
            continue
        skip_source_line = False
        warning = _WARNING.match(line.rstrip("\n"))
        if warning:
            skip_source_line = True
            line = warning.group(1) + "\n"
        if any(pattern.search(line) for pattern in _NOISE):
            continue
        if any(path in line for path in _local_paths()):
            continue
        kept.append(line)
    return "".join(kept)


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of an executed notebook without machine-specific noise.

    Args:
        notebook: NotebookNode. An executed notebook (left unchanged).

    Returns:
        The cleaned copy: stderr streams through `clean_stderr` (dropped
        when empty) and no per-cell execution times.
    """
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                output.text = clean_stderr(output.text)
                if not output.text:
                    continue
            outputs.append(output)
        cell.outputs = outputs
    return notebook


def execute(path: pathlib.Path | str) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel; the file is untouched.

    The kernel starts in the notebook's folder, as in Jupyter. A cell that
    raises stops the run with `nbclient.exceptions.CellExecutionError`.

    Args:
        path: str or Path. The `.ipynb` file.

    Returns:
        The executed notebook, cleaned (see `clean`).
    """
    path = pathlib.Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return clean(notebook)


def resolve(name: str) -> pathlib.Path:
    """The notebook a command-line name means: a path, a file name in
    notebooks/ or a unique prefix of one (`06`)."""
    path = pathlib.Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path
    matches = sorted(HERE.glob(f"{path.stem}*.ipynb"))
    if len(matches) != 1:
        raise SystemExit(
            f"`{name}` should name one notebook in {HERE.name}/. "
            f"Received {len(matches)} matches."
        )
    return matches[0]


def main(argv: list[str]) -> int:
    paths = [resolve(name) for name in argv] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        notebook = execute(path)
        nbformat.write(notebook, path)
        size = path.stat().st_size / 1e6
        seconds = time.perf_counter() - start
        sys.stdout.write(f"{path.name}: {seconds:.0f} s, {size:.2f} MB\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
