"""Batch scoring: a bundle's predictions for every row of a file, streamed.

`score_file` reads the input in chunks of `batch_size` rows, scores each
chunk with the bundle's `predict`, and appends the chunk with its score
columns to the output, so memory stays bounded by one chunk whatever the
file size. The input is any table training reads (`recsys.data.sources`):
Parquet (a file or a directory) and CSV or TSV (plain, `.gz`, `.bz2` or
`.zst`) are streamed with pyarrow; JSON, JSON lines and other compressions
are read whole, by training's reader. It is what `recsys score` and
`recsys predict --input` run.
"""

import contextlib
import logging
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from recsys.data.sources import CSV_MISSING_MARKS
from recsys.data.sources import MISSING_MARKS
from recsys.data.sources import ROW_NAMES
from recsys.data.sources import SUPPORTED_FORMS
from recsys.data.sources import TEXT_READERS
from recsys.data.sources import check_output_file
from recsys.data.sources import check_parquet_columns
from recsys.data.sources import check_parquet_directory
from recsys.data.sources import csv_layout
from recsys.data.sources import decimals_as_numbers
from recsys.data.sources import empty_cells
from recsys.data.sources import grouped_numbers
from recsys.data.sources import index_as_columns
from recsys.data.sources import load_interactions
from recsys.data.sources import make_output_folder
from recsys.data.sources import table_form
from recsys.features.hashing import canonical_strings
from recsys.logs import progress_bar
from recsys.storage.atomic_write import write_tables_atomically

SUPPORTED_FORMATS = (".parquet", ".csv")
# Compressions of a CSV or TSV file that pyarrow's streaming reader opens
# by the file's name; other forms are read whole by training's reader.
STREAMED_COMPRESSIONS = ("", ".gz", ".bz2", ".zst")
# A number written with a point or an exponent (`171.0`, `1.71e2`): how
# pandas writes a float column, whole numbers included.
FLOAT_SPELLING = r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)"

logger = logging.getLogger(__name__)


def _format(path, what):
    extension = os.path.splitext(path)[1].lower()
    if extension not in SUPPORTED_FORMATS:
        raise ValueError(
            f"The {what} file must end in one of {SUPPORTED_FORMATS}. "
            f"Received: {path!r}"
        )
    return extension


def _input_form(path):
    """The input's form (`table_form`), or a `ValueError` listing the
    forms read."""
    form = table_form(path)
    if form != ".parquet" and form not in TEXT_READERS:
        raise ValueError(
            f"Cannot read the input {path!r}: expected {SUPPORTED_FORMS}, as "
            "training reads. Fix: save the rows in one of these forms, or "
            "name the file with the extension of its form."
        )
    return form


def _batches(path, batch_size, text_columns=()):
    """`(batches, total_rows, column_names, written_types, decimal)`: record
    batches of the input, streamed where its form allows.

    A CSV's `text_columns` (the bundle's categorical ones, `_text_columns`)
    are read as text whatever their cells: a block of "None" alone is no
    column of nulls to the model, nor "True" a bool. `written_types` maps
    those of them pyarrow would read as numbers to that type, for the
    output (`_as_written`): ids written back as the numbers they were. It
    is None for the other forms, read with their missing cells as training
    reads them (no `_text_marks_missing`). `decimal` is a CSV's decimal mark
    (`csv_layout`), None for the other forms."""
    form = _input_form(path)
    if form == ".parquet" and os.path.isdir(path):
        import pyarrow.dataset

        check_parquet_directory(path)
        check_parquet_columns(path)
        shards = pyarrow.dataset.dataset(
            path, format="parquet", partitioning="hive"
        )
        return (
            shards.to_batches(batch_size=batch_size),
            shards.count_rows(),
            shards.schema.names,
            None,
            None,
        )
    if form == ".parquet":
        check_parquet_columns(path)
        reader = pq.ParquetFile(path)
        return (
            reader.iter_batches(batch_size=batch_size),
            reader.metadata.num_rows,
            reader.schema_arrow.names,
            None,
            None,
        )
    name = os.path.basename(path).lower()
    compression = name[name.rfind(form) + len(form) :]
    if form not in (".csv", ".tsv") or compression not in STREAMED_COMPRESSIONS:
        # JSON has no streaming reader that keeps one schema for every
        # chunk (a column of whole numbers in one chunk, with a null in the
        # next), and pyarrow opens no .xz, .zip or .tar: read whole, as
        # training reads them.
        frame = load_interactions(path)
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            # A JSON column of numbers and text: pandas holds it, Arrow
            # (the output's writer) does not.
            raise ValueError(
                f"Cannot write the rows of {path} with their scores: {error}."
                " Fix: give each column values of one type (all numbers, or "
                "all text)."
            ) from None
        return (
            table.to_batches(max_chunksize=batch_size),
            table.num_rows,
            table.column_names,
            None,
            None,
        )
    # CSV: pyarrow reads blocks of bytes; rows per block vary, so the total
    # is unknown (the bar counts rows as they come). The file is read as
    # training read its table: its separator, decimal mark and code columns
    # (`csv_layout`), so `0042` stays the id it was trained as.
    sep = "\t" if form == ".tsv" else None
    layout = csv_layout(path, sep)
    block_size = max(batch_size * 64, 1 << 20)
    names = _pandas_names(path, layout.get("sep", sep or ","))
    renamed = {} if names is None else {"column_names": names, "skip_rows": 1}
    read_options = pv.ReadOptions(block_size=block_size, **renamed)

    def open_csv(texts):
        return pv.open_csv(
            path,
            read_options=read_options,
            parse_options=pv.ParseOptions(
                delimiter=layout.get("sep", sep or ",")
            ),
            convert_options=pv.ConvertOptions(
                column_types=dict.fromkeys(
                    [*layout.get("dtype", {}), *texts], pa.string()
                ),
                decimal_point=layout.get("decimal", "."),
                # Missing where pandas (training) reads missing: an "n/a" in a
                # column of numbers kept as text was the value "n/a" to score.
                # In a column of text, "None" is a value there (`NONE`): text
                # cells are never null here, `_text_marks_missing` reads the
                # other marks as missing.
                null_values=list(MISSING_MARKS),
                strings_can_be_null=False,
            ),
        )

    with _unparsed_rows(path):  # the first block is read here
        reader = open_csv(text_columns)
        inferred = open_csv(()).schema if text_columns else None
    written = {
        name: inferred.field(name).type
        for name in text_columns
        if inferred is not None
        and name in inferred.names
        and name not in layout.get("dtype", {})
        and (
            pa.types.is_integer(inferred.field(name).type)
            or pa.types.is_floating(inferred.field(name).type)
        )
    }
    return (
        _read_through(reader, path),
        None,
        reader.schema.names,
        written,
        layout.get("decimal", "."),
    )


def _pandas_names(path, sep):
    """The column names pandas (training) gives a CSV whose header leaves
    some empty (a spreadsheet's trailing `,,`: `Unnamed: 3`, ...), where
    pyarrow would keep several named `""` (and scoring crashed), or whose
    header is one field short (R's `write.table`: `ROW_NAMES` first, as
    training reads it); None where pandas names no column so."""
    first = pd.read_csv(path, sep=sep, nrows=1)
    names = [str(name) for name in first.columns]
    if first.index.nlevels == 1 and not first.index.equals(
        pd.RangeIndex(len(first))
    ):
        return [ROW_NAMES, *names]
    if not any(name.startswith("Unnamed: ") for name in names):
        return None
    return names


def _as_written(chunk, written, path):
    """`chunk` with the `written` columns (`_batches`) in the number types
    pyarrow reads them as, their marks of missing cells null: the input's
    columns go back to the output as they came.

    Raises:
        ValueError: naming the column and a cell that is no such number
            below rows that were (a CSV's reader refused it so too).
    """
    import pyarrow.compute as pc

    for name, type_ in written.items():
        index = chunk.schema.get_field_index(name)
        column = chunk.column(index)
        missing = pc.is_in(column, pa.array(MISSING_MARKS, pa.string()))
        try:
            cast = pc.cast(pc.if_else(missing, None, column), type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ValueError(
                f"Cannot read {path}: column {name!r} holds a cell that is no "
                f"{type_} number below rows that were. Fix: write that "
                "column's cells in one kind (all numbers, or quote them all)."
            ) from None
        chunk = chunk.set_column(index, name, cast)
    return chunk


def _text_columns(bundle):
    """The columns `bundle` reads as categories (its categorical, multi-valued
    and text features), whose values are text to it: 42 and "42" alike."""
    from recsys.features.specs import CategoricalFeature

    preprocessor = getattr(bundle, "preprocessor", None)
    features = getattr(preprocessor, "features", [])
    names = [f.name for f in features if isinstance(f, CategoricalFeature)]
    text = getattr(bundle, "text_column", None)
    return [*names, text] if text else names


def _numeric_columns(bundle):
    """The columns `bundle` reads as numbers (its numeric features)."""
    from recsys.features.specs import NumericFeature

    features = getattr(getattr(bundle, "preprocessor", None), "features", [])
    return [f.name for f in features if isinstance(f, NumericFeature)]


def _text_marks_missing(frame):
    """`frame` with the cells of its text columns that training read as
    missing (`CSV_MISSING_MARKS`: empty, "NA", ...) missing; "None" stays
    a value, as in training's text columns (`none_as_value`)."""
    changed = {}
    for column in frame.columns:
        series = frame[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            marked = series.isin(CSV_MISSING_MARKS)
            if marked.any():
                changed[column] = series.mask(marked)
    return frame.assign(**changed) if changed else frame


def _vocabulary_indexes(unseen):
    """The vocabularies of the features `unseen` (an `UnseenValues`)
    counts, as indexes to look cells up in, by feature name."""
    if not unseen.features:
        return {}
    vocabularies = unseen.preprocessor.vocabularies_
    return {
        feature.name: pd.Index(vocabularies[feature.name], dtype=object)
        for feature in unseen.features
    }


def _float_spellings_as_learned(frame, indexes):
    """`frame` with the categorical cells that write a number as a float
    (`171.0`, `1.71e2`) spelled as the vocabulary learned it (`171`), where
    it holds that spelling and not the cell's own.

    Training reads a float column's whole numbers as the integers they
    are (`canonical_strings`), and so does scoring a Parquet or JSON file;
    a CSV's categorical columns are read as text (`_batches`), where
    `171.0`, from the very file the bundle was trained on, would be a
    value never learned. A cell the vocabulary holds as written (a column
    of text, `"171.0"` among `"abc"`) is left as it is, and so is any
    other text ("None", "NA", `0042`). Only the distinct cells absent from
    the vocabulary are parsed.

    Args:
        frame: pandas DataFrame of a chunk of a CSV file.
        indexes: dict. Feature name -> vocabulary (`_vocabulary_indexes`).

    Returns:
        pandas DataFrame: `frame`, or a copy with those cells respelled.
    """
    changed = {}
    for name, index in indexes.items():
        if name not in frame.columns:
            continue
        series = frame[name]
        if not pd.api.types.is_string_dtype(series):
            continue
        cells = pd.Series(series.dropna().unique(), dtype=object)
        cells = cells[
            (index.get_indexer(cells) < 0)
            & cells.str.fullmatch(FLOAT_SPELLING).to_numpy(bool)
        ]
        if cells.empty:
            continue
        spelled = canonical_strings(pd.to_numeric(cells).astype(np.float64))
        known = index.get_indexer(spelled) >= 0
        if known.any():
            respell = dict(zip(cells[known], spelled[known], strict=True))
            changed[name] = series.map(respell).fillna(series)
    return frame.assign(**changed) if changed else frame


def _read_through(reader, path):
    """`reader`'s batches, its unparsed rows said as `_unparsed_rows` says."""
    with _unparsed_rows(path):
        yield from reader


@contextlib.contextmanager
def _unparsed_rows(path):
    """A row pyarrow cannot parse (more fields than the header, past the
    rows `csv_layout` read) as a `ValueError` with the fix, as training's
    reader says it.

    Raises:
        ValueError: in place of `pyarrow.ArrowInvalid`.
    """
    try:
        yield
    except pa.ArrowInvalid as error:
        fix = (
            "save the file as UTF-8"
            if "UTF8" in str(error)
            else "give every row the header's fields, putting the cells "
            "that hold the separator in double quotes"
        )
        raise ValueError(
            f"Cannot read {path}: {str(error).strip()}. Fix: {fix}."
        ) from None


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


def _predict(bundle, frame, unseen):
    """`(predictions, blank)`: the bundle's predictions for `frame`'s rows,
    and the mask of rows left unscored (NaN predictions). A tabular
    bundle counts its values never learned into `unseen` as it reads them
    (`TabularBundle.predict`).

    A text bundle refuses an empty text, and training dropped the rows
    without one (`data.drop_missing`); one row of a file must not stop the
    others. Its rows without a text (empty, blank or missing) are left
    unscored, so the output still holds one row per input row. Other
    bundles score every row (they read missing values themselves).
    """
    column = getattr(bundle, "text_column", None)
    blank = np.zeros(len(frame), bool)
    if column is not None and column in frame.columns:
        # As `data.drop_missing` judged the training rows.
        blank = empty_cells(frame[[column]])[column].to_numpy(bool)
    if not blank.any():
        # A `TabularBundle`: the file's counts are said once (each chunk's
        # were said alone where the model had no categorical column).
        if column is None and unseen.preprocessor is not None:
            return np.asarray(bundle.predict(frame, unseen=unseen)), blank
        return np.asarray(bundle.predict(frame)), blank
    width = len(bundle.classes)
    predictions = np.full(
        (len(frame),) if width == 2 else (len(frame), width),
        np.nan,
        np.float32,
    )
    if not blank.all():
        predictions[~blank] = bundle.predict(frame[~blank])
    return predictions, blank


def _warn_unscored(bundle, count, rows, total, columns):
    """Logs how many rows `_predict` left unscored, and which."""
    shown = rows[:5] + (["..."] if count > 5 else [])
    logger.warning(
        "Text column %r is empty or missing in %s of %s rows (rows %s, "
        "counted from 0): their %s left empty, as no text was given to "
        "classify. Fix: fill in those texts, or drop those rows.",
        bundle.text_column,
        f"{count:,}",
        f"{total:,}",
        ", ".join(map(str, shown)),
        (
            f"{columns[0]!r} is"
            if len(columns) == 1
            else f"{len(columns)} columns ({', '.join(columns)}) are"
        ),
    )


def _cell(values, row):
    """The Python value at position `row` of a pandas or pyarrow column."""
    value = values.iloc[row] if isinstance(values, pd.Series) else values[row]
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    return value.item() if isinstance(value, np.generic) else value


def _note(frame, name, marked, counts, examples):
    """Adds the `marked` rows of column `name` to `counts`, and its first
    marked value to `examples` (once)."""
    if marked.any():
        counts[name] = counts.get(name, 0) + int(marked.sum())
        if name not in examples:
            examples[name] = _cell(frame[name], int(np.argmax(marked)))


# A number this many standard deviations (of the training rows) from their
# mean, on the model's scale, is no value the model has learnt anything
# about: a date typed into a day-of-month column read as 1.26e9 ozone. No
# training value lies further out than sqrt(rows - 1) deviations
# (Samuelson's inequality): 1,000 for a million rows, so none of a table
# that size is said (20 said a column's rare 1s among 0s).
FAR_DEVIATIONS = 1000


# The fewest rows scored whose column empty on every one is said.
EMPTY_COLUMN_ROWS = 20


class UnseenValues:
    """Counts the category values to score that the bundle never learned.

    A value outside a categorical feature's vocabulary reads as the
    unknown value, one vector shared by all of them: a new category, or a
    spelling the training table never had (`male` beside `Male`). Rows
    are scored anyway; the counts are said once, at the end (`warn`): of
    a `TabularBundle.predict` call, or of a whole file (`score_file`).
    """

    def __init__(self, preprocessor):
        from recsys.features.specs import CategoricalFeature
        from recsys.features.specs import MultiCategoricalFeature
        from recsys.features.specs import NumericFeature
        from recsys.features.specs import TextFeature

        self.preprocessor = preprocessor
        # Words of a text are new all the time; a list's values (`a|b`) are
        # categories (a cell `['a' 'b']` written by `to_csv` is one).
        self.features = [
            f
            for f in getattr(preprocessor, "features", ())
            if isinstance(f, CategoricalFeature)
            and not isinstance(f, TextFeature)
            and not (isinstance(f, MultiCategoricalFeature) and f.tokenizer)
            and f.vocabulary != "hash"
        ]
        self.counts: dict[str, int] = {}
        self.examples: dict[str, object] = {}
        # Numbers read on the training rows' scale (mean 0, deviation 1).
        self.numeric = [
            f
            for f in getattr(preprocessor, "features", ())
            if isinstance(f, NumericFeature) and f.transform != "none"
        ]
        self.far: dict[str, int] = {}
        self.far_examples: dict[str, object] = {}
        # Empty cells per feature column: a column empty on every row was
        # scored as its missing value without a word (an upstream join
        # that broke).
        self.empty: dict[str, int] = {}

    def add(self, frame, inputs=None):
        """Counts the unseen values of one chunk's rows.

        Args:
            frame: DataFrame (or pyarrow Table, with `inputs`) of the rows.
            inputs: dict or `None`. The rows' model inputs, as
                `Preprocessor.transform(frame)` returned them: their ids
                are read rather than looked up again (a second pass over
                every column of a large input). Defaults to `None`.
        """
        for feature in self.features:
            codes = self._inputs(feature.name, frame, inputs)
            if codes is not None:
                unseen = (codes >= 1) & (codes <= feature.num_oov_buckets)
                if unseen.ndim == 2:  # a list's values: rows with one
                    unseen = unseen.any(axis=1)
                _note(frame, feature.name, unseen, self.counts, self.examples)
        for feature in self.numeric:
            scaled = self._inputs(feature.name, frame, inputs)
            if scaled is not None:
                far = np.abs(scaled) > FAR_DEVIATIONS  # NaN (missing): no
                _note(frame, feature.name, far, self.far, self.far_examples)
        names = getattr(frame, "column_names", None) or list(frame.columns)
        for feature in getattr(self.preprocessor, "features", ()):
            if feature.name in names:
                column = frame[feature.name]
                empty = (
                    column.isna().sum()
                    if isinstance(column, pd.Series)
                    else column.null_count
                )
                self.empty[feature.name] = self.empty.get(
                    feature.name, 0
                ) + int(empty)

    def _inputs(self, name, frame, inputs):
        """Column `name`'s model inputs: read from `inputs`, else made."""
        if inputs is not None:
            return inputs[name]
        if name in frame.columns:
            return self.preprocessor.transform_column(name, frame[name])
        return None

    def warn(self, total):
        """Logs the counts, if any, of `total` rows."""
        # Not of a few rows: a row or two with a cell left empty (read as
        # the training mean, or the missing category) is an ordinary call.
        empty = [
            name
            for name, count in self.empty.items()
            if total >= EMPTY_COLUMN_ROWS and count == total
        ]
        if empty:
            verb, them = ("are", "them") if len(empty) > 1 else ("is", "it")
            logger.warning(
                "%s %s empty on every one of the %s rows scored: the model "
                "read its missing value on each, so the scores differ by the "
                "other columns only. Fix: fill %s (a join or export that "
                "left %s out?).",
                ", ".join(f"'{name}'" for name in empty),
                verb,
                f"{total:,}",
                them,
                them,
            )
        if self.far:
            said = "; ".join(
                f"'{name}' in {count:,} of {total:,} rows, e.g. "
                f"{self.far_examples[name]!r}"
                for name, count in self.far.items()
            )
            logger.warning(
                "Numbers far outside the training rows' (more than %d "
                "standard deviations from their mean): %s. The model's "
                "answers for those rows mean little. Fix, where one is a "
                "typo, another unit or a date or flag in a column of "
                "numbers: write it as the training table does.",
                FAR_DEVIATIONS,
                said,
            )
        if not self.counts:
            return
        said = []
        for name, count in self.counts.items():
            example = self.examples[name]
            known = {
                str(v).strip().casefold(): v
                for v in self.preprocessor.vocabularies_.get(name, [])
            }
            twin = known.get(str(example).strip().casefold())
            case = f" (training has {twin!r})" if twin is not None else ""
            said.append(
                f"'{name}' in {count:,} of {total:,} rows, e.g. "
                f"{example!r}{case}"
            )
        logger.warning(
            "Values the model never learned (absent from training, or too "
            "rare there): %s. Those rows are "
            "scored with the unknown value in their place (one vector for "
            "all of them). Fix, where a value is a spelling of a known one: "
            "write it as the training table does.",
            "; ".join(said),
        )


def score_columns(bundle, predictions, names=None):
    """The output columns of a chunk's predictions, by name.

    Args:
        bundle: the bundle that made `predictions` (its `classes` name a
            multiclass model's columns).
        predictions: array of one score per row, or one probability per
            row and class.
        names: dict or `None`. Output names to use instead of `score` /
            `prob_<class>` / `predicted` (`output_names`' answer).

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
    # The most probable class, which every user would otherwise compute;
    # empty for a row left unscored (all NaN).
    scored = ~np.isnan(predictions).all(axis=1)
    # The classes as the label held them: numbers stay numbers (a predicted
    # month compared with the month column).
    classes = np.asarray(list(bundle.classes), dtype=object)
    best = classes[np.nanargmax(np.where(scored[:, None], predictions, 0), 1)]
    columns[names.get("predicted", "predicted")] = np.where(scored, best, None)
    return columns


def output_names(usual, input_names):
    """Output column names that no input column holds already.

    A table may have a feature called `score` (a credit score, a rating):
    appending another `score` would write a file with two columns of one
    name, which Parquet readers refuse. Such a name becomes
    `predicted_score` (then `predicted_score_2`, ...), and a warning says so.

    Args:
        usual: list of the output names (`score`, or `prob_<class>` and
            `predicted`).
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
    """Scores every row of a table file into another file.

    The output holds the input's columns plus `score` (the predicted value
    or positive-class probability), or one `prob_<class>` column per class
    and `predicted` (the most probable class) for a multiclass model;
    `predicted_score` (and so on) where the input has a column of that name
    already. Its format follows its extension.

    A text bundle's rows without a text (empty or missing) are written
    with empty scores, and a warning counts them (`_predict`).

    Args:
        bundle: a bundle with `predict(frame)`, such as a `TabularBundle`.
        input_path: str. A table file (or Parquet directory) of a form
            training reads (`recsys.data.sources.SUPPORTED_FORMS`), holding
            every feature column of the bundle.
        output_path: str. `.parquet` or `.csv` file to write (replaced),
            other than the input. Its missing folders are made.
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
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"Input file not found: {input_path}")
    output_format = _format(output_path, "output")
    stem = os.path.basename(os.path.normpath(input_path)).split(".")[0]
    check_output_file(
        output_path,
        input_path,
        f"{stem or 'scores'}_scored{output_format}",
        getattr(bundle, "path", None),
    )
    batches, total, names, written, decimal = _batches(
        input_path, batch_size, _text_columns(bundle)
    )
    _check_columns(bundle, names, input_path)
    make_output_folder(output_path)
    renamed = None
    unscored: list[int] = []  # the first rows `_predict` left unscored
    counts = {"rows": 0, "unscored": 0}
    unseen = UnseenValues(getattr(bundle, "preprocessor", None))
    indexes = _vocabulary_indexes(unseen) if written is not None else {}
    numeric = _numeric_columns(bundle)
    bar = progress_bar(
        total=total, desc="score", unit="rows", disable=not progress
    )

    def scored():
        nonlocal renamed
        for batch in batches:
            table = pa.Table.from_batches([batch])
            for start in range(0, table.num_rows, batch_size):
                chunk = table.slice(start, batch_size)
                # A named index of a Parquet file is a column (as training
                # reads it), not the index `to_pandas` would make it; its
                # decimals are numbers, not Python objects.
                frame = index_as_columns(chunk.to_pandas())
                frame = decimals_as_numbers(frame)
                if written is not None:  # a CSV read by pyarrow
                    frame = _text_marks_missing(frame)
                    frame = _float_spellings_as_learned(frame, indexes)
                    # `"30,841"` (`"1.234,56"`) as training read it
                    # (`comma_thousands`).
                    frame = grouped_numbers(frame, numeric, decimal)
                # Rows numbered in the file, as a message names them.
                frame.index = range(counts["rows"], counts["rows"] + len(frame))
                try:
                    predictions, blank = _predict(bundle, frame, unseen)
                except ValueError as error:  # a cell to mend: name the file
                    raise ValueError(f"{input_path}: {error}") from None
                if blank.any():
                    where = np.flatnonzero(blank) + counts["rows"]
                    unscored.extend(where[: 5 - len(unscored)].tolist())
                    counts["unscored"] += int(blank.sum())
                counts["rows"] += chunk.num_rows
                if written:
                    chunk = _as_written(chunk, written, input_path)
                if renamed is None:  # the first chunk's columns name them
                    usual = list(score_columns(bundle, predictions))
                    renamed = output_names(usual, names)
                for name, values in score_columns(
                    bundle, predictions, renamed
                ).items():
                    # NaN (an unscored row) is written as an empty cell.
                    chunk = chunk.append_column(
                        name, pa.array(values, from_pandas=True)
                    )
                yield chunk
                bar.update(chunk.num_rows)
        unseen.warn(counts["rows"])
        if counts["unscored"]:
            columns = list(score_columns(bundle, predictions, renamed))
            _warn_unscored(
                bundle, counts["unscored"], unscored, counts["rows"], columns
            )

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
