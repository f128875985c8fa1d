"""Batch scoring: a bundle's predictions for every row of a file, streamed.

`score_file` reads Parquet or CSV in chunks of `batch_size` rows with
pyarrow, scores each chunk with the bundle's `predict`, and appends the
chunk with its score columns to the output, so memory stays bounded by one
chunk whatever the file size. It is what `recsys score` runs.
"""

import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from recsys.data.sources import check_output_file
from recsys.data.sources import csv_layout
from recsys.logs import progress_bar
from recsys.storage.atomic_write import write_tables_atomically

SUPPORTED_FORMATS = (".parquet", ".csv")

logger = logging.getLogger(__name__)


def _format(path, what):
    extension = os.path.splitext(path)[1].lower()
    if extension not in SUPPORTED_FORMATS:
        raise ValueError(
            f"The {what} file must end in one of {SUPPORTED_FORMATS}. "
            f"Received: {path!r}"
        )
    return extension


def _batches(path, batch_size):
    """`(batches, total_rows, column_names)`: record batches of the input,
    streamed."""
    if _format(path, "input") == ".parquet":
        reader = pq.ParquetFile(path)
        return (
            reader.iter_batches(batch_size=batch_size),
            reader.metadata.num_rows,
            reader.schema_arrow.names,
        )
    # CSV: pyarrow reads blocks of bytes; rows per block vary, so the total
    # is unknown (the bar counts rows as they come). The file is read as
    # training read its table: its separator, decimal mark and code columns
    # (`csv_layout`), so `0042` stays the id it was trained as.
    layout = csv_layout(path)
    block_size = max(batch_size * 64, 1 << 20)
    reader = pv.open_csv(
        path,
        read_options=pv.ReadOptions(block_size=block_size),
        parse_options=pv.ParseOptions(delimiter=layout.get("sep", ",")),
        convert_options=pv.ConvertOptions(
            column_types=dict.fromkeys(layout.get("dtype", {}), pa.string()),
            decimal_point=layout.get("decimal", "."),
        ),
    )
    return reader, None, reader.schema.names


def _check_columns(bundle, names, path):
    """Raises a `KeyError` naming the columns the bundle reads that the
    input lacks, before any row is scored."""
    needed = bundle.input_columns
    missing = [name for name in needed if name not in names]
    if missing:
        raise KeyError(
            f"{path} has no column {', '.join(map(repr, missing))}, which "
            f"the bundle reads (it was trained on {needed}). Its columns: "
            f"{list(names)}. Fix: add the column to the file."
        )


def score_columns(bundle, predictions, names=None):
    """The output columns of a chunk's predictions, by name.

    Args:
        bundle: the bundle that made `predictions` (its `classes` name a
            multiclass model's columns).
        predictions: array of one score per row, or one probability per
            row and class.
        names: dict or `None`. Output names to use instead of `score` /
            `prob_<class>` (`output_names`' answer).

    Returns:
        dict of column name to values.
    """
    predictions = np.asarray(predictions)
    names = names or {}
    if predictions.ndim == 1:
        return {names.get("score", "score"): predictions}
    columns = {}
    for i, label in enumerate(bundle.classes):
        name = f"prob_{label}"
        columns[names.get(name, name)] = predictions[:, i]
    return columns


def output_names(usual, input_names):
    """Output column names that no input column holds already.

    A table may have a feature called `score` (a credit score, a rating):
    appending another `score` would write a file with two columns of one
    name, which Parquet readers refuse. Such a name becomes
    `predicted_score` (then `predicted_score_2`, ...), and a warning says so.

    Args:
        usual: list of the output names (`score`, or `prob_<class>`).
        input_names: list of the input's column names.

    Returns:
        dict of the usual name to the name written, for the renamed ones.
    """
    taken = set(input_names) | set(usual)
    renamed = {}
    for name in usual:
        if name not in input_names:
            continue
        free, n = f"predicted_{name}", 2
        while free in taken:
            free, n = f"predicted_{name}_{n}", n + 1
        taken.add(free)
        renamed[name] = free
        logger.warning(
            "The input already has a column %r; the predictions are "
            "written as %r.",
            name,
            free,
        )
    return renamed


def score_file(
    bundle, input_path, output_path, *, batch_size=65536, progress=True
):
    """Scores every row of a Parquet or CSV file into another file.

    The output holds the input's columns plus `score` (the predicted value
    or positive-class probability), or one `prob_<class>` column per class
    for a multiclass model; `predicted_score` (and so on) where the input
    has a column of that name already. Its format follows its extension.

    Args:
        bundle: a bundle with `predict(frame)`, such as a `TabularBundle`.
        input_path: str. `.parquet` or `.csv` file holding every feature
            column of the bundle.
        output_path: str. `.parquet` or `.csv` file to write (replaced),
            other than the input.
        batch_size: int. Rows per chunk. Defaults to `65536`.
        progress: bool. Show a progress bar. Defaults to `True`.

    Returns:
        int. The number of rows scored.

    Example:

    ```python
    score_file(load_bundle("artifacts/movielens_liked"),
               "pairs.parquet", "scores.parquet")
    ```
    """
    if not hasattr(bundle, "predict"):
        raise ValueError(
            f"A {type(bundle).__name__} cannot score rows: batch scoring "
            'needs a tabular bundle (model.kind = "tabular").'
        )
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or (batch_size < 1)
    ):
        raise ValueError(
            "`batch_size` must be a positive integer. "
            f"Received: batch_size={batch_size!r}"
        )
    if not os.path.isfile(input_path):
        raise FileNotFoundError(f"Input file not found: {input_path}")
    output_format = _format(output_path, "output")
    stem, extension = os.path.splitext(os.path.basename(input_path))
    check_output_file(output_path, input_path, f"{stem}_scored{extension}")
    batches, total, names = _batches(input_path, batch_size)
    _check_columns(bundle, names, input_path)
    renamed = None
    bar = progress_bar(total=total, unit="rows", disable=not progress)

    def scored():
        nonlocal renamed
        for batch in batches:
            table = pa.Table.from_batches([batch])
            for start in range(0, table.num_rows, batch_size):
                chunk = table.slice(start, batch_size)
                predictions = bundle.predict(chunk.to_pandas())
                if renamed is None:  # the first chunk's columns name them
                    usual = list(score_columns(bundle, predictions))
                    renamed = output_names(usual, names)
                for name, values in score_columns(
                    bundle, predictions, renamed
                ).items():
                    chunk = chunk.append_column(name, pa.array(values))
                yield chunk
                bar.update(chunk.num_rows)

    writer = pq.ParquetWriter if output_format == ".parquet" else pv.CSVWriter
    try:
        # Written beside the destination, flushed, then renamed: a failed
        # run (or a power cut) never leaves a truncated output in place.
        return write_tables_atomically(
            output_path,
            scored(),
            writer,
            empty_message=f"Input file {input_path} holds no rows.",
        )
    finally:
        bar.close()
