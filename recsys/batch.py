"""Batch recommendations: the top-k items of many users, into one Parquet.

`recommend_all` walks a two-tower bundle's users (or a list of users) in
chunks, asks `Bundle.recommend` for each chunk's top k through the index
(or exact search), and appends the chunk's rows to a Parquet file, so memory
stays bounded by one chunk whatever the number of users. The file is
written beside its destination and renamed into place: a failed run never
leaves a partial output. It is what `recsys recommend --all` runs.

The output holds one row per recommended item:

```
<data.user>  rank  <data.item>  score
1            1     318          4.21
1            2     296          4.07
```

`read_users` reads the list of users that `recsys recommend --users FILE`
takes.
"""

import contextlib
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.sources import check_output_file
from recsys.data.sources import header_separator
from recsys.data.sources import index_as_columns
from recsys.data.sources import make_output_folder
from recsys.errors import positive_int
from recsys.logs import progress_bar
from recsys.storage.atomic_write import write_tables_atomically

logger = logging.getLogger(__name__)

# Users per Parquet row group: a chunk's `users x k` rows stay small.
DEFAULT_CHUNK = 4096
# Users per call to `Bundle.recommend`. The index fetches `k` plus the
# longest seen list of the call for every user in it, so a chunk is sent
# in groups of users with similar histories (sorted by how many items they
# have seen): one heavy user no longer makes every query in the chunk
# fetch thousands of neighbours (4x the users/s on MovieLens).
GROUP = 256
# An integer written as a float ("42.0"), as a float column spells it.
_WHOLE = r"^([+-]?\d+)\.0*$"


def _is_id(value: str, ids: np.ndarray) -> bool:
    """Whether the text `value` is an integer of the dtype of `ids`."""
    try:
        np.array([value]).astype(ids.dtype)
    except (ValueError, OverflowError):
        return False
    return True


def _like_bundle_ids(
    values: pd.Series, ids: np.ndarray, spot: Any, path: str
) -> np.ndarray:
    """`values` in the dtype of the bundle's `ids`, so that the output's
    user column joins back to the training table.

    Into integer ids, every value must be an integer of that dtype
    (`"0042"` and `"42.0"` are 42); into any other ids, values are text
    (the bundle matches `"42"` and `42` as the same user).

    Raises:
        ValueError: naming the first value that is no integer of the
            bundle's dtype, with `spot(label)` saying where it is.
    """
    if ids.dtype.kind not in "iu":
        return values.astype(str).to_numpy()
    # How a float column (or a spreadsheet) spells whole numbers.
    text = values.astype(str).str.replace(_WHOLE, r"\1", regex=True)
    try:
        return text.to_numpy(dtype=str).astype(ids.dtype)
    except (ValueError, OverflowError):
        bad = [label for label, value in text.items() if not _is_id(value, ids)]
    more = f"; {len(bad) - 1} more like it" if len(bad) > 1 else ""
    raise ValueError(
        f"{spot(bad[0])} of {path} holds {values[bad[0]]!r}, which cannot be "
        f"a user id of this bundle: its ids are integers ({ids.dtype}){more}. "
        "Fix: correct or delete it (ids the bundle never saw are fine: they "
        "get the most popular items)."
    )


def _drop_header(
    values: pd.Series, ids: np.ndarray, path: str, column: str
) -> pd.Series:
    """`values` without a first line that names the column rather than a
    user (a header other than `column`, e.g. `uid`).

    Into integer ids, a first line that is no integer is a header. Into
    text ids, it is one when it is not a user of the bundle and a later
    line is: the first of a list of new users stays.
    """
    first = values.iloc[0]
    if ids.dtype.kind in "iu":
        if _is_id(re.sub(_WHOLE, r"\1", first), ids):
            return values
        logger.info(
            "Read the first line of %s, %r, as a header: it is no integer.",
            path,
            first,
        )
        return values.iloc[1:]
    known = pd.Index(ids.astype(str)).get_indexer(values.iloc[:1000])
    if known[0] >= 0 or not (known[1:] >= 0).any():
        return values
    logger.warning(
        "Read the first line of %s, %r, as a header: it is not a user of "
        "the bundle, and the lines below it are. Fix: if it is a user, put "
        "a header line %r above it.",
        path,
        first,
        column,
    )
    return values.iloc[1:]


def _check_output(output: str, bundle: Any) -> None:
    """Refuses an output that is a directory, under a file
    (`check_output_file`) or inside the bundle (its files are checked by
    sha256: one written over breaks the bundle), and makes its missing
    folders, before any user is scored."""
    check_output_file(
        output, None, "recommendations.parquet", bundle.path or None
    )
    make_output_folder(output)


def read_users(
    path: str, column: str, like: np.ndarray | None = None
) -> np.ndarray:
    """Reads a list of user ids from a Parquet, CSV or text file.

    A `.parquet` file needs a column named `column` (or a single column). A
    CSV or text file holds one id per line, or a table whose header names
    `column`; `.tsv` files are split on tabs. Empty lines are skipped.

    With `like`, the ids take its dtype, and a list of one id per line may
    start with a header of any name (`uid`): a first line that cannot be
    an integer id of an integer `like`, or one that is not in a text `like`
    while a later line is, is read as a header.

    Args:
        path: str. The file.
        column: str. The user column's name, the bundle's `data.user`.
        like: optional array. The bundle's user ids.

    Returns:
        1-D numpy array of user ids, in the file's order (repeats kept),
        in the dtype of `like` when given.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if no column holds the users, the file holds none, or
            (with an integer `like`) a line holds no integer of its dtype,
            naming the line and its value.

    Example:

    ```python
    users = read_users("users.txt", "userId", like=bundle.user_ids)
    ```
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Users file not found: {path}")
    headed = False
    parquet = path.lower().endswith(".parquet")
    if parquet:
        # The users may be the file's named index (`set_index(user)`).
        frame = index_as_columns(pd.read_parquet(path)).reset_index(drop=True)

        def spot(label: Any) -> str:
            return f"Row {label} (from 0)"

    else:
        sep = "\t" if path.lower().endswith((".tsv", ".tsv.gz")) else ","
        with contextlib.suppress(ValueError):  # empty: said below
            # A header of `userId;segment` (a spreadsheet's export) was one
            # column, and its ids never matched: the header's separator.
            sep = sep if sep == "\t" else header_separator(path)
        try:
            # Blank lines kept (and dropped below), so that row i is
            # line i + 1 in the messages.
            frame = pd.read_csv(
                path,
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
            )
        except pd.errors.EmptyDataError:  # no line, or blank lines only
            raise ValueError(
                f"Users file {path} holds no user id. Fix: write one id per "
                "line (or a table whose header names the user column)."
            ) from None

        def spot(label: Any) -> str:
            return f"Line {label + 1}"

        # A header row names the columns; a bare list of ids has none.
        filled = np.flatnonzero((frame != "").any(axis=1).to_numpy())
        top = filled[0] if len(filled) else 0
        first = [str(v).strip() for v in frame.iloc[top]] if len(frame) else []
        headed = column in first
        if headed:
            frame = frame.iloc[top + 1 :].set_axis(first, axis=1)
    if column in frame.columns:
        values = frame[column]
    elif frame.shape[1] == 1:
        values = frame.iloc[:, 0]
    elif not parquet and _ids_with_commas(lines := _lines(path), like):
        # No header: one id per line, whose commas are the ids' own
        # (`Muñoz, Juan`); they were read as two columns and refused.
        values = lines
    else:
        raise ValueError(
            f"The users file {path} has no column {column!r} (the bundle's "
            f"data.user). Received columns: {list(frame.columns)}. Fix: name "
            f"the users column {column!r}, or list one id per line."
        )
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        values = values.astype(str).str.strip()
        values = values[values != ""]
    values = values.dropna()
    if like is not None and not (parquet or headed or values.empty):
        values = _drop_header(values, like, path, column)
    if values.empty:
        raise ValueError(
            f"The users file {path} lists no users. Fix: write one id per "
            "line (or a table whose header names the user column)."
        )
    if like is None:
        return values.to_numpy()
    return _like_bundle_ids(values, like, spot, path)


def _lines(path: str) -> pd.Series:
    """The file's lines, whole (blank ones kept: row i is line i + 1)."""
    with open(path, encoding="utf-8-sig", errors="replace") as file:
        return pd.Series(file.read().splitlines(), dtype=object)


def _ids_with_commas(lines: pd.Series, like: np.ndarray | None) -> bool:
    """Whether whole lines are the ids: most of the filled ones are ids
    of `like` (the bundle's users)."""
    if like is None:
        return False
    filled = lines.str.strip()
    filled = filled[filled != ""]
    if filled.empty:
        return False
    known = filled.isin(pd.Index(like.astype(str)))  # as `_drop_header`
    return bool(known.mean() >= 0.5)


def _once(users: np.ndarray) -> np.ndarray:
    """`users` with each id once, in the order they first appear.

    Raises:
        ValueError: if `users` is not a non-empty 1-D list.
    """
    if users.ndim != 1 or len(users) == 0:
        raise ValueError(
            "`users` must be a non-empty 1-D list of user ids. Received: "
            + (f"{len(users)} ids" if users.ndim == 1 else f"{users!r:.80}")
            + ". Fix: pass [user] for one user."
        )
    repeated = pd.Series(users).duplicated().to_numpy()
    if repeated.any():
        # A user listed twice got their rows twice, and counted twice in
        # `known_users`.
        logger.warning(
            "Repeated ids in the users listed: %d of %d (e.g. %r); each "
            "user is recommended once.",
            repeated.sum(),
            len(users),
            users[repeated][:1].tolist()[0],
        )
    return users[~repeated]


def _chunk_table(
    users: np.ndarray,
    ids: np.ndarray,
    scores: np.ndarray,
    schema: pa.Schema,
) -> pa.Table:
    """The rows of one chunk: `users x k`, padding (score -inf) dropped."""
    k = ids.shape[1]
    keep = np.isfinite(scores).ravel()
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))
    columns = (np.repeat(users, k), ranks, ids.ravel(), scores.ravel())
    return pa.table(
        [pa.array(column[keep]) for column in columns], schema=schema
    )


def _recommend_chunk(
    bundle: Any, users: np.ndarray, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """`bundle.recommend(users, **options)`, in groups of similar histories.

    Returns the same `(ids, scores)`, rows in the order of `users`.
    """
    rows = bundle.user_rows(users)
    seen = np.diff(bundle.seen_indptr)[np.maximum(rows, 0)]
    order = np.argsort(np.where(rows >= 0, seen, 0), kind="stable")
    answers = [
        bundle.recommend(users[order[start : start + GROUP]], **options)
        for start in range(0, len(users), GROUP)
    ]
    back = np.empty_like(order)
    back[order] = np.arange(len(order))  # sorted position of each user
    ids = np.concatenate([found for found, _ in answers])
    scores = np.concatenate([values for _, values in answers])
    return ids[back], scores[back]


def recommend_all(
    bundle: Any,
    output: str,
    *,
    k: int = 10,
    users: Sequence[Any] | np.ndarray | None = None,
    exact: bool = False,
    exclude_seen: bool = True,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
) -> dict[str, Any]:
    """Writes the top-k items of every user of a bundle to a Parquet file.

    Users are recommended `chunk` at a time by `bundle.recommend`, as it
    recommends to each: through the index (or exact search), each user's
    training items excluded, and users the bundle has never seen given the
    most popular items (score: their share of training interactions). Rows
    are `(user, rank, item, score)`, best first, the user and item columns
    named as the bundle's `data.user` and `data.item`. A user left with
    fewer than `k` unseen items gets fewer rows.

    The file is written to a temporary file beside `output` and renamed
    into place once complete: a failure leaves no file (and an existing
    `output` untouched).

    Args:
        bundle: a two-tower `Bundle` (`recsys.load_bundle`).
        output: str. The `.parquet` file to write (replaced if it exists).
        k: int. Items per user, capped at the catalog size (with a
            warning). Defaults to `10`.
        users: optional list or array of user ids. Defaults to every user
            the bundle was trained on, in the bundle's order. An id listed
            again is recommended once (with a warning).
        exact: bool. Exact search instead of the index. Defaults to
            `False`.
        exclude_seen: bool. Drop each user's training items. Defaults to
            `True`.
        chunk: int. Users written at a time (a Parquet row group); each
            chunk is searched in groups of `GROUP` users with similar
            histories. Defaults to `4096`.
        progress: bool. Show a progress bar on stderr. Defaults to `True`.

    Returns:
        dict with `output` (its absolute path), `users` (distinct),
        `known_users` (users the bundle has vectors for), `rows`, `k`,
        `exact`, `seconds` and `users_per_second`.

    Example:

    ```python
    bundle = recsys.load_bundle("artifacts/movielens_two_tower")
    recommend_all(bundle, "recs.parquet", k=20)
    pd.read_parquet("recs.parquet").head()
    ```
    """
    if not hasattr(bundle, "user_embeddings"):
        raise ValueError(
            f"A {type(bundle).__name__} cannot recommend items to users: "
            "batch recommendations need a two-tower bundle (model.kind = "
            '"two_tower").'
        )
    k = positive_int(k, "k")
    chunk = positive_int(chunk, "chunk")
    if not str(output).lower().endswith(".parquet"):
        raise ValueError(
            f"The output file must end in .parquet. Received: {output!r}"
        )
    _check_output(output, bundle)
    users = bundle.user_ids if users is None else _once(np.asarray(users))
    num_items = len(bundle.item_ids)
    if k > num_items:
        # 50000 for 500 (a typo) wrote every item for every user: billions
        # of rows, unsaid.
        logger.warning(
            "k=%d is above the catalog size: k is capped at the catalog "
            "(%s items), so each user gets all of them%s.",
            k,
            f"{num_items:,}",
            " but their seen items" if exclude_seen else "",
        )
    data = bundle.config["data"]
    schema = pa.schema(
        [
            (data["user"], pa.array(users[:1]).type),
            ("rank", pa.int32()),
            (data["item"], pa.array(bundle.item_ids[:1]).type),
            ("score", pa.float32()),
        ]
    )
    started = time.perf_counter()
    bar = progress_bar(
        total=len(users), desc="recommend", unit="users", disable=not progress
    )

    def tables():
        for start in range(0, len(users), chunk):
            part = users[start : start + chunk]
            ids, scores = _recommend_chunk(
                bundle, part, k=k, exclude_seen=exclude_seen, exact=exact
            )
            yield _chunk_table(part, ids, scores, schema)
            bar.update(len(part))

    try:
        # Flushed, then renamed: readers see the old file or the whole new
        # one, never a truncated Parquet.
        rows = write_tables_atomically(output, tables(), pq.ParquetWriter)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    return {
        "output": os.path.abspath(output),
        "users": int(len(users)),
        "known_users": int((bundle.user_rows(users) >= 0).sum()),
        "rows": rows,
        "k": min(k, num_items),
        "exact": exact,
        "seconds": seconds,
        "users_per_second": len(users) / seconds if seconds > 0 else None,
    }
